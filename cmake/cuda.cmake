# CUDA kernels (src/kernels/cuda) and their GPU check and benchmark programs.
#
# TILEGRAD_CUDA: AUTO (default) builds them when nvcc is found, except in the sanitizer build, whose
# ASan/UBSan runtime does not mix with the CUDA driver; ON requires nvcc; OFF skips them. The CPU
# engine never depends on them. Code is generated for sm_80 (Ampere and Ada run it) and sm_90a
# (Hopper; the "a" target enables wgmma and setmaxnreg for the Hopper kernels).
#
# Included by the top-level CMakeLists.txt, and usable alone by a project that only needs the
# kernels (bench/device/flash.sh builds that way on the GPU machine).
set(TILEGRAD_CUDA AUTO CACHE STRING "Build the CUDA kernels: AUTO (when nvcc is found), ON or OFF")
set_property(CACHE TILEGRAD_CUDA PROPERTY STRINGS AUTO ON OFF)

# nvcc is usually outside PATH; CMake's detection honours CUDACXX.
if(NOT DEFINED ENV{CUDACXX} AND NOT CMAKE_CUDA_COMPILER AND EXISTS /usr/local/cuda/bin/nvcc)
  set(ENV{CUDACXX} /usr/local/cuda/bin/nvcc)
endif()

set(_tilegrad_cuda_enabled OFF)
if(TILEGRAD_CUDA STREQUAL "AUTO")
  if(TILEGRAD_SANITIZE)
    message(STATUS "tilegrad: CUDA kernels off in the sanitizer build (TILEGRAD_CUDA=ON forces them)")
  else()
    include(CheckLanguage)
    check_language(CUDA)
    if(CMAKE_CUDA_COMPILER)
      set(_tilegrad_cuda_enabled ON)
    else()
      message(STATUS "tilegrad: no CUDA compiler found; CUDA kernels off")
    endif()
  endif()
elseif(TILEGRAD_CUDA)
  set(_tilegrad_cuda_enabled ON)
endif()
if(NOT _tilegrad_cuda_enabled)
  return()
endif()

enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)

# .cu files are C++20 like the rest (CUDA_STANDARD follows CMAKE_CXX_STANDARD); CMake 3.25 does not
# know nvcc's flag for it yet (nvcc supports it from CUDA 12).
set(CMAKE_CUDA_STANDARD 20)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
set(CMAKE_CUDA_EXTENSIONS OFF)
if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
  set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
  set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
endif()

get_filename_component(_tilegrad_root "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

# Warnings are errors for nvcc's own diagnostics and for the host compiler's pass over .cu files.
set(TILEGRAD_CUDA_FLAGS
  -gencode=arch=compute_80,code=sm_80
  -gencode=arch=compute_90a,code=sm_90a
  --Werror=all-warnings
  -Xcompiler=-Wall,-Wextra,-Werror
  -lineinfo)

file(GLOB TILEGRAD_CUDA_SOURCES CONFIGURE_DEPENDS ${_tilegrad_root}/src/kernels/cuda/*.cu)
add_library(tilegrad_cuda_kernels STATIC ${TILEGRAD_CUDA_SOURCES})
target_include_directories(tilegrad_cuda_kernels PUBLIC ${_tilegrad_root}/src)
target_link_libraries(tilegrad_cuda_kernels PUBLIC CUDA::cudart)
target_compile_options(tilegrad_cuda_kernels PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${TILEGRAD_CUDA_FLAGS}>)
# Architectures come from the explicit -gencode flags; PIC so the kernels can go into the shared
# library that bench/device/flash_bench.py loads.
set_target_properties(tilegrad_cuda_kernels PROPERTIES
  CUDA_ARCHITECTURES OFF
  POSITION_INDEPENDENT_CODE ON)

# C entry points for bench/device/flash_bench.py (ctypes), which checks and times the kernels
# against PyTorch on raw device buffers.
add_library(tilegrad_flash_capi SHARED ${_tilegrad_root}/bench/cuda/flash_capi.cpp)
target_link_libraries(tilegrad_flash_capi PRIVATE tilegrad_cuda_kernels)
target_compile_options(tilegrad_flash_capi PRIVATE -Wall -Wextra -Wpedantic -Werror)

# Self-contained GPU check against a float64 CPU reference: exits 77 (skipped) without a GPU, so
# it can sit in the normal test suite of a machine with none.
add_executable(tilegrad_flash_test ${_tilegrad_root}/tests/cuda/flash_test.cu)
target_link_libraries(tilegrad_flash_test PRIVATE tilegrad_cuda_kernels)
target_compile_options(tilegrad_flash_test PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:${TILEGRAD_CUDA_FLAGS}>)
set_target_properties(tilegrad_flash_test PROPERTIES CUDA_ARCHITECTURES OFF)
if(TILEGRAD_BUILD_TESTS)
  add_test(NAME cuda.flash_attention COMMAND tilegrad_flash_test)
  set_tests_properties(cuda.flash_attention PROPERTIES SKIP_RETURN_CODE 77)
endif()

# The CUDA runtime layer (src/cuda: checked calls, streams, the caching allocator). In the full
# build it is part of the engine library, so allocator_for(Device::cuda()) works in every program.
# The allocator registers itself from a static initialiser, which the linker would leave out of
# the static library's programs since nothing refers to it: --undefined on its anchor keeps it.
# Alone (the GPU machine's build, tests/cuda/standalone) it is a small library with the few core
# and memory files it needs, so that build needs none of the engine's dependencies.
file(GLOB TILEGRAD_CUDA_RUNTIME_SOURCES CONFIGURE_DEPENDS ${_tilegrad_root}/src/cuda/*.cpp)
if(TARGET tilegrad_lib)
  target_sources(tilegrad_lib PRIVATE ${TILEGRAD_CUDA_RUNTIME_SOURCES})
  target_link_libraries(tilegrad_lib PUBLIC CUDA::cudart)
  set(_tilegrad_cuda_engine tilegrad_lib)
else()
  # Alone, without the engine: the backend and its GEMMs need the ops' interfaces, so they stay out.
  list(FILTER TILEGRAD_CUDA_RUNTIME_SOURCES EXCLUDE REGEX "/src/cuda/(cuda_backend|gemm)\\.cpp$")
  add_library(tilegrad_cuda_runtime STATIC ${TILEGRAD_CUDA_RUNTIME_SOURCES}
    ${_tilegrad_root}/src/core/error.cpp
    ${_tilegrad_root}/src/core/storage.cpp
    ${_tilegrad_root}/src/memory/category.cpp
    ${_tilegrad_root}/src/memory/cpu_allocator.cpp
    ${_tilegrad_root}/src/memory/tracker.cpp)
  target_include_directories(tilegrad_cuda_runtime PUBLIC ${_tilegrad_root}/src)
  target_link_libraries(tilegrad_cuda_runtime PUBLIC CUDA::cudart)
  target_compile_options(tilegrad_cuda_runtime PRIVATE -Wall -Wextra -Wpedantic -Werror)
  set(_tilegrad_cuda_engine tilegrad_cuda_runtime)
endif()
target_link_options(${_tilegrad_cuda_engine} INTERFACE
  "LINKER:--undefined=tilegrad_cuda_allocator_anchor")
if(TARGET tilegrad_lib)
  target_link_options(tilegrad_lib INTERFACE "LINKER:--undefined=tilegrad_cuda_backend_anchor")
endif()

# GPU tests of the runtime layer (the allocator against the tracker and the driver); exit 77
# (skipped) without a GPU. The shared runtime, as the engine library uses: one copy of the CUDA
# runtime's state in the process.
add_executable(tilegrad_cuda_memory_test ${_tilegrad_root}/tests/cuda/memory_test.cu)
target_link_libraries(tilegrad_cuda_memory_test PRIVATE ${_tilegrad_cuda_engine})
target_compile_options(tilegrad_cuda_memory_test PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:${TILEGRAD_CUDA_FLAGS}>)
set_target_properties(tilegrad_cuda_memory_test PROPERTIES
  CUDA_ARCHITECTURES OFF
  CUDA_RUNTIME_LIBRARY Shared)
if(TILEGRAD_BUILD_TESTS)
  add_test(NAME cuda.memory COMMAND tilegrad_cuda_memory_test)
  set_tests_properties(cuda.memory PROPERTIES SKIP_RETURN_CODE 77)
endif()

# The engine's CUDA backend (src/cuda/cuda_backend.cpp) calls the kernels, and cuBLASLt for GEMMs.
if(TARGET tilegrad_lib)
  target_link_libraries(tilegrad_lib PUBLIC tilegrad_cuda_kernels CUDA::cublasLt CUDA::cublas)
endif()

# GPU kernel tests (tests/cuda_kernels): every kernels/cuda entry against the kernels/cpu entry of
# the same name on random inputs. GoogleTest; each test skips itself without a GPU.
if(TARGET tilegrad_lib AND TILEGRAD_BUILD_TESTS)
  find_package(GTest REQUIRED)
  include(GoogleTest)
  file(GLOB TILEGRAD_CUDA_KERNEL_TEST_SOURCES CONFIGURE_DEPENDS
    ${_tilegrad_root}/tests/cuda_kernels/*.cpp)
  add_executable(tilegrad_cuda_kernel_tests ${TILEGRAD_CUDA_KERNEL_TEST_SOURCES})
  target_include_directories(tilegrad_cuda_kernel_tests PRIVATE ${_tilegrad_root}/tests)
  target_link_libraries(tilegrad_cuda_kernel_tests PRIVATE tilegrad_lib GTest::gtest
    GTest::gtest_main)
  target_compile_options(tilegrad_cuda_kernel_tests PRIVATE ${TILEGRAD_WARNINGS})
  gtest_discover_tests(tilegrad_cuda_kernel_tests TEST_PREFIX "cuda." DISCOVERY_TIMEOUT 60)
endif()
