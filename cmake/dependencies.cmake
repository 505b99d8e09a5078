# Every third-party dependency is found here, once, as an imported target.
find_package(Threads REQUIRED)
find_package(Boost 1.81 REQUIRED COMPONENTS json url)
find_package(OpenSSL 3 REQUIRED)
find_package(fmt REQUIRED)
find_package(toml11 REQUIRED)
find_package(CLI11 REQUIRED)
find_package(prometheus-cpp REQUIRED COMPONENTS core)
find_package(PkgConfig REQUIRED)
pkg_check_modules(LMDB REQUIRED IMPORTED_TARGET lmdb)
pkg_check_modules(SYSTEMD REQUIRED IMPORTED_TARGET libsystemd)
pkg_check_modules(LIBCRYPT REQUIRED IMPORTED_TARGET libcrypt)
if(EMBER_TESTS)
    find_package(doctest REQUIRED)
endif()

# Asio and Beast are compiled once (separate compilation) instead of in every
# translation unit that includes them: it saves minutes on a 2-core build.
add_library(ember_asio STATIC ${CMAKE_SOURCE_DIR}/cmake/asio_impl.cpp)
target_compile_definitions(ember_asio PUBLIC
    BOOST_ASIO_SEPARATE_COMPILATION
    BOOST_BEAST_SEPARATE_COMPILATION
    BOOST_ASIO_NO_DEPRECATED
    BOOST_ASIO_DISABLE_BOOST_COROUTINE)
target_link_libraries(ember_asio PUBLIC Boost::headers OpenSSL::SSL OpenSSL::Crypto Threads::Threads)

# RE2: admin-supplied patterns (warm-up response rules, bounce classification)
# match in linear time.
if(NOT TARGET PkgConfig::RE2)
    pkg_check_modules(RE2 REQUIRED IMPORTED_TARGET re2)
endif()
if(NOT TARGET PkgConfig::CARES)
    pkg_check_modules(CARES REQUIRED IMPORTED_TARGET libcares)
endif()
# libpsl: organizational domains for DMARC (auth/dmarc.hpp).
if(NOT TARGET PkgConfig::PSL)
    pkg_check_modules(PSL REQUIRED IMPORTED_TARGET libpsl)
endif()
# DKIM: libopendkim (Debian libopendkim-dev), the reference implementation
# auth/ checks its signer against; <opendkim/dkim.h> is used in auth/ only.
pkg_check_modules(OPENDKIM REQUIRED IMPORTED_TARGET opendkim)
