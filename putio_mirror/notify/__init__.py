"""Telling the world outside: notifications (Apprise), the on-item-placed hook, *arr rescans."""
