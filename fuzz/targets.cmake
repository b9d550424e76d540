# The fuzz target libraries, defined once for both users: fuzz/CMakeLists.txt
# (the libFuzzer executables, WFM_FUZZ=ON) and tests/fuzz/CMakeLists.txt (the
# corpus replay test of the normal build).
#   wfm_fuzz_targets         FuzzNpy, FuzzNpz, FuzzH5ad, FuzzCheckpoint
#   wfm_fuzz_request_target  FuzzRequests (links the server libraries)
if(TARGET wfm_fuzz_targets)
  return()
endif()

# HDF5's and zlib's imported targets are visible only where find_package ran.
if(NOT CMAKE_C_COMPILER_LOADED)
  enable_language(C)
endif()
find_package(HDF5 REQUIRED COMPONENTS C)
find_package(ZLIB REQUIRED)

wfm_library(wfm_fuzz_targets
  SOURCES ${PROJECT_SOURCE_DIR}/fuzz/targets.cc ${PROJECT_SOURCE_DIR}/fuzz/util.cc
  DEPS wfm_io wfm_checkpoint absl::status absl::statusor absl::strings
  PRIVATE_DEPS hdf5::hdf5 ZLIB::ZLIB nlohmann_json::nlohmann_json)
wfm_torch_pch(wfm_fuzz_targets)

# The server code FuzzRequests calls (fuzz/CMakeLists.txt substitutes a
# library of just those sources for the clang build).
if(NOT DEFINED WFM_FUZZ_SERVER_LIBS)
  set(WFM_FUZZ_SERVER_LIBS wfm_server wfm_server_core)
endif()
wfm_library(wfm_fuzz_request_target
  SOURCES ${PROJECT_SOURCE_DIR}/fuzz/request_target.cc
  DEPS wfm_fuzz_targets ${WFM_FUZZ_SERVER_LIBS} wfm_config wfm_proto)
# No shared precompiled header: gRPC brings -pthread, which the PCH was built
# without (clang refuses the mix, gcc ignores the PCH).
