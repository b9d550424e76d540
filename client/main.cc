// The `wfm` command-line tool; see client/cli.h.
#include "client/cli.h"

int main(int argc, char** argv) { return wfm::client::RunCli(argc, argv); }
