"""The paper's analyses as pure functions of arrays: behaviour axes, SNR, R², navigation."""
