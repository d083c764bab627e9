# PCRE2 (Debian's libpcre2-dev), for GPT-2's pre-tokenisation regex with Unicode properties
# (src/data/gpt2_pretokenizer.cpp), found through pkg-config. Included after tilegrad_lib exists.
find_package(PkgConfig REQUIRED)
pkg_check_modules(PCRE2 REQUIRED IMPORTED_TARGET libpcre2-8)
target_link_libraries(tilegrad_lib PRIVATE PkgConfig::PCRE2)
# The data layer also parses JSON (encoder.json, tokenizer.json) with nlohmann_json, found above.
target_link_libraries(tilegrad_lib PRIVATE nlohmann_json::nlohmann_json)
