"""Clinical notes: vocabularies, synthetic training notes, development set and the notes pipeline."""
