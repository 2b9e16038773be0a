# FTQueue. `make` builds ./server, ./client and ./picture (draws a traced
# run as SVG) with nothing but a C++17 compiler; `make test` builds
# everything with CMake and runs the CTest suite.
CXX      ?= g++
CXXFLAGS ?= -O2 -g
CXXFLAGS += -std=c++17 -Wall -Wextra -MMD -MP
JOBS     ?= 2

COMMON = wire.o net.o
PROTO  = multicast.o membership.o
STATE  = ftqueue.o merge.o replica.o

all: server client picture bench

server: server.o $(STATE) $(PROTO) $(COMMON)
	$(CXX) $(CXXFLAGS) -o $@ $^

client: client.o $(COMMON)
	$(CXX) $(CXXFLAGS) -o $@ $^

# Reads trace logs and writes SVG: it needs none of the protocol's code.
picture: picture.o
	$(CXX) $(CXXFLAGS) -o $@ $^

# The benchmark program reuses the test harness's process and port handling.
# `make bench` also runs the standard table (with the slow-member rows: one
# member's links at 20 ms + 5% loss each way, through server --cut-file)
# and the failover table (about four minutes; see README.md).
BENCH_OBJS = tests/bench.o tests/harness.o $(STATE) $(PROTO) $(COMMON)
ifeq ($(filter bench,$(MAKECMDGOALS)),bench)
.PHONY: bench
bench: server $(BENCH_OBJS)
	$(CXX) $(CXXFLAGS) -pthread -o bench $(BENCH_OBJS)
	./bench --table
	./bench --failover-table
else
bench: $(BENCH_OBJS)
	$(CXX) $(CXXFLAGS) -pthread -o $@ $^
endif

%.o: %.cpp
	$(CXX) $(CXXFLAGS) -c -o $@ $<

# The whole CTest suite (simulator, smoke tests with --loss, history checks,
# bad input). Any ctest arguments can be passed: make test ARGS="-R smoke".
test:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build build -j $(JOBS)
	cd build && ctest --output-on-failure -j $(JOBS) $(ARGS)

# The same suite built with AddressSanitizer and UndefinedBehaviorSanitizer.
test-sanitize:
	cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=Debug -DFTQ_SANITIZE=ON >/dev/null
	cmake --build build-sanitize -j $(JOBS)
	cd build-sanitize && ctest --output-on-failure -j $(JOBS) $(ARGS)

clean:
	rm -rf *.o *.d tests/*.o tests/*.d server client picture bench build build-sanitize

.PHONY: all test test-sanitize clean
-include $(wildcard *.d tests/*.d)
