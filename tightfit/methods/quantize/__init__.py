"""Step 3: HAQ, mixed-precision quantization chosen by a DDPG agent from the target's own costs."""
