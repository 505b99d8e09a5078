#include "queue/store.hpp"

#include "fixture.hpp"

#include <doctest/doctest.h>

#include <condition_variable>
#include <csignal>
#include <cstring>
#include <mutex>
#include <set>

#include <sys/wait.h>
#include <unistd.h>

using namespace ember;
using namespace ember::queue;
using namespace ember::queue::test;

namespace {

// The child: commits messages with up to 16 in flight and, from each
// successful `done`, writes the id to the pipe, i.e. it "answers 250" there.
// Runs until killed; never returns into doctest.
[[noreturn]] void child_commits(const StoreConfig& config, int out) {
    std::string error;
    auto store = Store::open(config, error);
    if (!store)
        ::_exit(2);
    std::mutex mu;
    std::condition_variable cv;
    int in_flight = 0;
    for (int i = 0; i < 100000; ++i) {
        {
            std::unique_lock lock(mu);
            cv.wait(lock, [&] { return in_flight < 16; });
            ++in_flight;
        }
        const auto id = store->next_id();
        store->commit(message(id, {recipient("a@example.com"), recipient("b@example.net")}),
                      content_for(id), [&, id](const CommitResult& r) {
                          if (r.status != CommitStatus::Ok)
                              ::_exit(3);
                          if (::write(out, &id, sizeof id) != sizeof id)
                              ::_exit(4);
                          std::lock_guard lock(mu);
                          --in_flight;
                          cv.notify_one();
                      });
    }
    ::_exit(0);
}

// Reads whole ids until `want` are read or the pipe reports EOF.
void read_ids(int in, std::vector<QueueId>& ids, std::size_t want) {
    QueueId id = 0;
    std::size_t have = 0; // bytes of `id` read so far
    while (ids.size() < want) {
        const auto n = ::read(in, reinterpret_cast<char*>(&id) + have, sizeof id - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        have += static_cast<std::size_t>(n);
        if (have == sizeof id) {
            ids.push_back(id);
            have = 0;
        }
    }
}

} // namespace

TEST_CASE("every message acknowledged before a kill -9 is present exactly once after reopen") {
    TempDir dir;
    const auto config = config_for(dir);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        ::close(fds[0]);
        child_commits(config, fds[1]);
    }
    ::close(fds[1]);

    std::vector<QueueId> acked;
    read_ids(fds[0], acked, 300); // the child is mid-stream: more commits in flight
    REQUIRE(::kill(pid, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    CAPTURE(status);
    REQUIRE(WIFSIGNALED(status));      // it was killed, not finished or failed
    read_ids(fds[0], acked, SIZE_MAX); // whatever it acknowledged before dying
    ::close(fds[0]);
    REQUIRE(acked.size() >= 300);

    auto store = open_store(config);
    const auto all = store->list(filter(std::nullopt, std::nullopt, SIZE_MAX));
    std::set<QueueId> present;
    for (const auto& m : all) {
        CHECK(present.insert(m.id).second); // no id twice
        CHECK(m.recipients.size() == 2);
        CHECK(store->load_content(m.id) == content_for(m.id));
    }
    // Every stored message decodes (list() skips one that does not).
    CHECK(all.size() == store->summary().messages);
    CHECK(store->counts().at(RecipientState::Queued) == 2 * all.size());
    for (const auto id : acked) {
        CAPTURE(format_queue_id(id));
        CHECK(present.count(id) == 1);
    }
    CHECK(std::set<QueueId>(acked.begin(), acked.end()).size() == acked.size());
    CHECK(store->next_id() > *present.rbegin());
}
