"""The OMG-Avatar desktop app (Dear PyGui).

Importing it keeps triton out of this process: triton ships its own LLVM, and loading it
after the window's OpenGL driver (Mesa's llvmpipe holds another LLVM) segfaults the process
(seen when timm or torch.export import torch._dynamo, which imports triton). The app never
compiles GPU kernels, and torch treats a triton that cannot be imported as absent.
"""

import sys

sys.modules.setdefault("triton", None)  # None in sys.modules makes `import triton` raise ImportError
