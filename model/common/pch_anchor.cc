// Compiles the shared LibTorch precompiled header (see model/CMakeLists.txt).
