"""Keys are stored only as hashes and shown once."""

from __future__ import annotations

from sqlalchemy import select

from governance.db import ApiKey, make_engine, session_factory
from governance.errors import NotFoundError
from governance.keys import KeyService, hash_secret


def test_create_authenticate_revoke(database_url: str) -> None:
    engine = make_engine(database_url)
    service = KeyService(session_factory(engine))
    created = service.create("billing", "finance", "nightly job")
    assert created.secret.startswith(created.principal.prefix + "-")
    with session_factory(engine)() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.id == created.principal.key_id)).one()
    assert row.secret_hash == hash_secret(created.secret)
    assert created.secret not in (row.prefix, row.secret_hash, row.description)
    assert service.authenticate(created.secret) == created.principal
    assert service.authenticate(created.secret + "x") is None
    service.revoke(created.principal.key_id)
    assert service.authenticate(created.secret) is None
    assert created.principal.key_id not in [k.id for k in service.list()]
    assert created.principal.key_id in [k.id for k in service.list(include_revoked=True)]
    try:
        service.revoke("th-nothere")
    except NotFoundError as error:
        assert "th-nothere" in error.message
    else:
        raise AssertionError("revoking an unknown key must fail")
    engine.dispose()
