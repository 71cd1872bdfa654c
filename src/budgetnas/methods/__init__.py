"""Search methods: MGAS, DNA, NAG and baselines."""
