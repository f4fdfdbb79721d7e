"""Sources and the `datasets` builder that turn MIDI collections into shareable datasets (see the data issue)."""
