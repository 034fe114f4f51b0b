"""Django looks for this app's management commands here."""
