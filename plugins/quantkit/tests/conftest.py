import os

# the triton kernels are tested on CPU through triton's interpreter; it must be on before the
# kernel module is imported (triton.jit reads it when the kernels are defined)
os.environ.setdefault("TRITON_INTERPRET", "1")
