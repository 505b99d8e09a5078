#pragma once
// Connects the SMTP server to the queue: an smtp::MessageSink whose commit()
// hands the message to queue::Store's group commit and resumes the session on
// its own executor once the transaction is on disk. Holds a work guard while
// a commit is in flight so the event loop cannot finish under it.

#include "queue/store.hpp"
#include "smtp/server_env.hpp"

#include <functional>

namespace ember::daemon {

class QueueSink final : public smtp::MessageSink {
public:
    explicit QueueSink(queue::Store& store) : store_(store) {}
    // Called on the session's executor after each successful commit (the
    // daemon wakes the scheduler with it).
    void on_committed(std::function<void()> callback) { on_committed_ = std::move(callback); }
    // Runs on the session's executor after the record is built and before
    // the commit; may rewrite the content (strip fields) and the
    // recipients' first attempt times (send-time optimisation,
    // daemon/submission_personalize.hpp). record.size follows the content.
    using Prepare = std::function<void(smtp::AcceptedMessage& message, queue::Message& record)>;
    void on_prepare(Prepare prepare) { prepare_ = std::move(prepare); }
    [[nodiscard]] std::string new_queue_id() override;
    [[nodiscard]] boost::asio::awaitable<smtp::SinkStatus>
    commit(smtp::AcceptedMessage message) override;

    // Builds the queue record for an accepted message (exposed for tests).
    [[nodiscard]] static queue::Message to_record(const smtp::AcceptedMessage& m, queue::QueueId id,
                                                  std::int64_t now_ms);

private:
    queue::Store& store_;
    std::function<void()> on_committed_;
    Prepare prepare_;
};

} // namespace ember::daemon
