"""Where MIDI files come from before the dataset builder sees them: local folders, music21's corpus, a polite crawler."""
