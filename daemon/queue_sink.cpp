#include "daemon/queue_sink.hpp"

#include "core/assert.hpp"

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <memory>

namespace ember::daemon {
namespace {

namespace asio = boost::asio;

smtp::SinkStatus to_sink_status(queue::CommitStatus status) {
    switch (status) {
    case queue::CommitStatus::Ok:
        return smtp::SinkStatus::Ok;
    case queue::CommitStatus::MapFull:
    case queue::CommitStatus::DiskFull:
        return smtp::SinkStatus::StorageFull;
    case queue::CommitStatus::ShuttingDown:
        return smtp::SinkStatus::ShuttingDown;
    case queue::CommitStatus::IoError:
        return smtp::SinkStatus::LocalError;
    }
    return smtp::SinkStatus::LocalError;
}

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

} // namespace

std::string QueueSink::new_queue_id() {
    return queue::format_queue_id(store_.next_id());
}

queue::Message QueueSink::to_record(const smtp::AcceptedMessage& m, queue::QueueId id,
                                    std::int64_t now) {
    queue::Message record;
    record.id = id;
    record.envelope = m.envelope;
    record.submission.client_ip = m.info.client_ip.to_string();
    record.submission.helo = m.info.helo;
    record.submission.auth_user = m.info.auth_user;
    record.submission.tls = m.info.tls;
    record.submission.listener = m.info.listener;
    record.submission.received_at_ms = now;
    record.size = m.content.size();
    for (const auto& spec : m.envelope.recipients) {
        queue::Recipient r;
        r.spec = spec;
        r.state = queue::RecipientState::Queued;
        r.next_attempt_ms = now;
        r.updated_ms = now;
        record.recipients.push_back(std::move(r));
    }
    return record;
}

// Not a coroutine (see core::offload): the initiation runs in Asio's frame.
asio::awaitable<smtp::SinkStatus> QueueSink::commit(smtp::AcceptedMessage message) {
    const auto id = queue::parse_queue_id(message.queue_id);
    EMBER_ASSERT(id.has_value()); // ids come from new_queue_id()
    auto record = to_record(message, *id, now_ms());
    if (prepare_) {
        prepare_(message, record);
        record.size = message.content.size();
    }
    return asio::async_initiate<const asio::use_awaitable_t<>&, void(smtp::SinkStatus)>(
        [this](auto handler, queue::Message rec, std::string content) {
            // std::function needs a copyable callable: share the one-shot handler.
            using Handler = decltype(handler);
            auto home = asio::get_associated_executor(handler);
            auto shared = std::make_shared<Handler>(std::move(handler));
            auto work = std::make_shared<asio::executor_work_guard<decltype(home)>>(home);
            store_.commit(std::move(rec), std::move(content),
                          [shared, work, notify = on_committed_](queue::CommitResult result) {
                              const auto status = to_sink_status(result.status);
                              asio::post(work->get_executor(), [shared, work, status, notify]() {
                                  if (status == smtp::SinkStatus::Ok && notify)
                                      notify();
                                  std::move (*shared)(status);
                              });
                          });
        },
        asio::use_awaitable, std::move(record), std::move(message.content));
}

} // namespace ember::daemon
