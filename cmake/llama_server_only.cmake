# Included by llama.cpp's own project() call (make passes -DCMAKE_PROJECT_llama.cpp_INCLUDE=<this file>)
# when pip builds llama-cpp-python. llama-cpp-python forces llama.cpp's "common" library on (with
# FORCE, so -DLLAMA_BUILD_COMMON=OFF cannot turn it off), but its server loads only libllama and ggml:
# common, and the HTTP client vendored for it, are ~60 of the build's ~140 steps. A plain variable
# set here shadows the cached ON for llama.cpp's folder, so neither is built nor installed.
set(LLAMA_BUILD_COMMON OFF)
