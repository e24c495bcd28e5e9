#!/bin/sh
# Runs the program of the same name beside it (NAME.real) with the libraries it was built with
# on Debian, glibc's loader included, whatever this machine's own are: scripts/gpu_check.sh
# carries boad, boa-client and boad-bench this way to a GPU machine that has none of boa's
# libraries. CUDA's driver library is found where the machine keeps it.
here=$(dirname "$(readlink -f "$0")")
path=$here/../lib
driver=$(ldconfig -p 2>/dev/null | awk '/libcuda\.so\.1 / {print $NF; exit}')
[ -n "$driver" ] && path=$path:$(dirname "$driver")
exec "$here/../lib/ld-linux-x86-64.so.2" --library-path "$path" "$here/$(basename "$0").real" "$@"
