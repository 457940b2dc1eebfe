"""initlab.probe (under construction)."""
