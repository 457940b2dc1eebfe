"""initlab.theory (under construction)."""
