# Helpers shared by every folder's CMakeLists.txt.

# Warnings for our own code (third-party headers come in as SYSTEM includes).
set(WFM_WARNINGS -Wall -Wextra -Wno-unused-parameter)
# Clang checks the locking annotations (ABSL_GUARDED_BY, ABSL_LOCKS_EXCLUDED,
# ...) on wfm::Mutex (model/common/mutex.h); a violation fails the build. GCC
# has no such analysis.
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  list(APPEND WFM_WARNINGS -Wthread-safety -Werror=thread-safety)
endif()

# Test executables are compiled at WFM_TEST_OPTIMIZE (default -O1) in Release
# builds: the code under test is the libraries, built at -O3; the tests' own
# code (set-up, references, assertions) gains nothing from -O3 and compiles
# 25-35% faster at -O1, which is most of a clean build (tests are ~300 of its
# ~470 compile steps). -O1 keeps the precompiled torch header usable (it only
# needs __OPTIMIZE__ to agree). Empty: the build type's flags.
set(WFM_TEST_OPTIMIZE "-O1" CACHE STRING
    "optimisation flag for test executables in Release builds (empty: -O3)")
set(WFM_TEST_OPTIMIZE_FLAGS "")
if(WFM_TEST_OPTIMIZE)
  set(WFM_TEST_OPTIMIZE_FLAGS "$<$<CONFIG:Release>:${WFM_TEST_OPTIMIZE}>")
endif()

# One precompiled LibTorch header, built once and reused by every target that
# compiles torch code: a TU that includes <torch/torch.h> costs ~16 s without it
# and ~6 s with it on the 2-core build machines.
function(wfm_torch_pch target)
  if(NOT TARGET wfm_torch_pch_anchor)
    message(FATAL_ERROR "wfm_torch_pch called before model/ defined wfm_torch_pch_anchor")
  endif()
  target_precompile_headers(${target} REUSE_FROM wfm_torch_pch_anchor)
endfunction()

# wfm_library(NAME SOURCES ... DEPS ...): a static library with our warnings.
function(wfm_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_compile_options(${name} PRIVATE ${WFM_WARNINGS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
endfunction()

# wfm_test(NAME SOURCES ... DEPS ... [TORCH] [LABELS ...] [TIMEOUT s]):
# a GoogleTest executable registered with CTest, one CTest entry per test case.
# Not defined when WFM_SKIP_TESTS names it.
function(wfm_test name)
  if(name IN_LIST WFM_SKIP_TESTS)
    return()
  endif()
  cmake_parse_arguments(ARG "TORCH" "TIMEOUT" "SOURCES;DEPS;LABELS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_compile_options(${name} PRIVATE ${WFM_WARNINGS} ${WFM_TEST_OPTIMIZE_FLAGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    WFM_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
    WFM_BINARY_DIR="${PROJECT_BINARY_DIR}")
  if(ARG_TORCH)
    wfm_torch_pch(${name})
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  # The BLAS runs on the calling thread, as in the programs (the thread
  # policy, model/nn/cpu_runtime.h, which tests do not apply): OpenBLAS's own
  # threads on the small LAPACK problems of the Gaussian code, with the other
  # ctest job busy on the second core, spent two minutes waiting for each
  # other in a test that needs one second of CPU.
  set(properties TIMEOUT ${ARG_TIMEOUT} ENVIRONMENT OPENBLAS_NUM_THREADS=1)
  if(ARG_LABELS)
    list(APPEND properties LABELS "${ARG_LABELS}")
  endif()
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 120 PROPERTIES ${properties})
endfunction()
