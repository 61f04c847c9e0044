"""Who may do what: roles, permissions and the principal acting."""

from governance.access.roles import PERMISSIONS, Permission, Principal, Role, parse_roles

__all__ = ["PERMISSIONS", "Permission", "Principal", "Role", "parse_roles"]
