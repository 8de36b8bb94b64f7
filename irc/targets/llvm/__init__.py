"""What the cpu and cuda targets share: LLVM types of irc's dtypes, the scalar meaning of every
element-wise op, storage conversion, a base kernel builder with loops, offsets, loads and
stores, and LLVM set-up. Nothing here knows which machine the code runs on."""
