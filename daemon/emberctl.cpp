// emberctl: the admin tool. Everything but argv handling lives in
// ctl_cli.cpp (verbs, socket resolution) and ctl_format.cpp (output), which
// the tests link.

#include "daemon/ctl_cli.hpp"

#include <iostream>
#include <string>
#include <vector>

int main(int argc, char** argv) {
    std::vector<std::string> args(argv, argv + argc);
    return ember::daemon::ctl::run(args, std::cout, std::cerr);
}
