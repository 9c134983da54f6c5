"""Backups of the management store (embedded KV): ``archive`` the file, ``cli`` the commands."""
