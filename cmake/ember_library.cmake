# ember_library(NAME SOURCES ... LINKS ...)
# One folder = one static library = one namespace. Warnings are shared here.
function(ember_warnings target)
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wnon-virtual-dtor
                           -Wold-style-cast -Wcast-align -Woverloaded-virtual
                           # g++ 12 false positive on Asio's coroutine frame allocator
                           # (awaitable_frame_base::operator delete, GCC bug 109224).
                           -Wno-mismatched-new-delete)
    if(EMBER_WERROR)
        target_compile_options(${target} PRIVATE -Werror)
    endif()
endfunction()

if(EMBER_SANITIZE)
    add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer
                        -fno-sanitize-recover=undefined)
    add_link_options(-fsanitize=address,undefined)
endif()

function(ember_library name)
    cmake_parse_arguments(ARG "" "" "SOURCES;LINKS" ${ARGN})
    add_library(ember_${name} STATIC ${ARG_SOURCES})
    target_include_directories(ember_${name} PUBLIC ${CMAKE_SOURCE_DIR})
    target_link_libraries(ember_${name} PUBLIC ${ARG_LINKS})
    ember_warnings(ember_${name})
endfunction()
