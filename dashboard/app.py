"""The dashboard's entry script: `streamlit run dashboard/app.py` (``tollhouse dashboard``).

Signs a person in, then offers the pages their roles allow (`dashboard.access.PAGES`);
each page checks its permission again itself.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from dashboard.access import visible_pages
from dashboard.services import Services
from dashboard.session import (
    NOTICE_STATE,
    current_principal,
    services,
    sign_in_with_key,
    sign_out,
)
from governance.access import Principal

HERE = Path(__file__).parent


def sign_in_form(found: Services) -> None:
    st.title("Tollhouse")
    st.caption("Governance dashboard: audit trail, spend, drift and policies.")
    notice = st.session_state.pop(NOTICE_STATE, None)
    if notice:
        st.warning(notice)
    with st.form("sign-in"):
        key = st.text_input(
            "API key",
            type="password",
            help="The key of a principal with a dashboard role (auditor, SRE, finance, "
            "policy author or approver, admin). It stays on the server for this session.",
        )
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:
        if sign_in_with_key(found, key):
            st.rerun()
        st.error("That key is unknown, revoked or expired, or its principal is disabled.")
    oidc = found.settings.dashboard.oidc
    if oidc is not None:
        if st.user.is_logged_in:
            st.warning(
                f"You are signed in as {st.user.get(oidc.claim) or 'an unknown identity'}, "
                "but no enabled principal has that name; ask an administrator to create one."
            )
            st.button("Sign out", on_click=st.logout)
        else:
            st.button(oidc.label, on_click=st.login, args=(oidc.provider,))


def sidebar(principal: Principal) -> None:
    with st.sidebar:
        roles = ", ".join(sorted(r.value for r in principal.roles)) or "no roles"
        st.caption(f"Signed in as `{principal.name or principal.prefix}` ({roles})")
        st.button("Sign out", on_click=sign_out, key="sign-out")


def main() -> None:
    st.set_page_config(page_title="Tollhouse", page_icon=":material/shield:", layout="wide")
    found = services()
    principal = current_principal(found)
    if principal is None:
        sign_in_form(found)
        return
    pages = visible_pages(principal)
    if not pages:
        st.warning(
            f"{principal.name or principal.prefix} has no role that uses the dashboard "
            "(app keys call the proxy only). Sign in with another key."
        )
        st.button("Sign out", on_click=sign_out)
        return
    sidebar(principal)
    navigation = st.navigation(
        [st.Page(HERE / p.script, title=p.title, icon=p.icon, url_path=p.url_path) for p in pages]
    )
    navigation.run()


main()
