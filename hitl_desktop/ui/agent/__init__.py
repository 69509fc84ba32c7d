"""The representative's workspace window and its dockable panels."""
