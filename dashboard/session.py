"""Streamlit glue shared by every page: the services of this process and who is signed in.

The configuration file comes from ``$TOLLHOUSE_CONFIG`` (``tollhouse dashboard --config``
sets it). Services are built once per process (``st.cache_resource``); the principal is
resolved on every rerun from the key kept in this browser session's server-side state,
or from the single sign-on identity.
"""

from __future__ import annotations

from typing import NoReturn

import streamlit as st

from dashboard.access import principal_of_identity, principal_of_key
from dashboard.services import Services, load_services
from governance.access import Permission, Principal
from governance.config import resolve_config_path
from governance.errors import TollhouseError

KEY_STATE = "tollhouse.key"  # the key a person signed in with (server-side only)
NOTICE_STATE = "tollhouse.notice"


@st.cache_resource(show_spinner=False)
def _services(config_path: str) -> Services:
    return load_services(resolve_config_path(config_path))


def services() -> Services:
    """This process's services, or an error box and a stopped page when the configuration
    or the database is unusable (fail closed: no page renders half-configured)."""
    try:
        return _services(str(resolve_config_path(None)))
    except TollhouseError as exc:
        st.error(f"The dashboard cannot start: {exc}")
        st.stop()


def _sso_name(services: Services) -> str | None:
    oidc = services.settings.dashboard.oidc
    if oidc is None or not st.user.is_logged_in:
        return None
    value = st.user.get(oidc.claim)
    return str(value) if value else None


def current_principal(services: Services) -> Principal | None:
    """Who is signed in now, or None (never signed in, key revoked, principal disabled)."""
    key = st.session_state.get(KEY_STATE)
    if isinstance(key, str) and key:
        principal = principal_of_key(services.reads, key)
        if principal is None:
            del st.session_state[KEY_STATE]
            st.session_state[NOTICE_STATE] = (
                "Your key is no longer valid (revoked, expired or its principal disabled); "
                "sign in again."
            )
        return principal
    name = _sso_name(services)
    return principal_of_identity(services.reads, name) if name else None


def sign_in_with_key(services: Services, key: str) -> bool:
    if principal_of_key(services.reads, key) is None:
        return False
    st.session_state[KEY_STATE] = key.strip()
    return True


def sign_out() -> None:
    st.session_state.pop(KEY_STATE, None)
    if st.user.is_logged_in:
        st.logout()


def deny(message: str) -> NoReturn:
    st.warning(message, icon=":material/lock:")
    st.stop()


def require(permission: Permission) -> tuple[Services, Principal]:
    """The services and the signed-in principal, if it holds ``permission``; otherwise
    an explanation and a stopped page (a page is never rendered half for a role)."""
    found = services()
    principal = current_principal(found)
    if principal is None:
        deny("Sign in to see this page.")
    if not principal.can(permission):
        roles = ", ".join(sorted(r.value for r in principal.roles)) or "none"
        deny(
            f"Your roles ({roles}) do not include the permission `{permission.value}` "
            "this page needs. Ask an administrator for the role that grants it."
        )
    return found, principal
