"""CardioSynth: differentially private synthetic tables from public domains and marginals."""
