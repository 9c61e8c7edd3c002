"""The sidebar's panels: avatar source, driving, view and capture."""
