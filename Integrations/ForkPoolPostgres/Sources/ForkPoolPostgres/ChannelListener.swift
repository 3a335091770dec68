// ChannelListener: LISTEN on a channel for as long as the calling task runs — on a connection
// borrowed from the client's pool, listening again after a lost connection or a database
// restart. Both sides of the queue use it: the submitter's OutcomeWatcher (forkpool_done) and
// a worker host (forkpool_ready). A notification sent while nobody listened is lost; their
// loops poll for that.
import Logging
import PostgresNIO

/// Listens on `channel` until the calling task is cancelled. `onListening` runs each time
/// listening (re)starts — the moment to look for what came while it did not — and
/// `onNotification` gets each notification's payload.
func listenContinually(on channel: String, client: PostgresClient, logger: Logger,
                       onListening: @escaping @Sendable () -> Void,
                       onNotification: @escaping @Sendable (String) -> Void) async {
    while !Task.isCancelled {
        do {
            try await client.withConnection { connection in
                try await connection.listen(on: channel) { notifications in
                    onListening()
                    for try await notification in notifications { onNotification(notification.payload) }
                }
            }
        } catch {
            if Task.isCancelled { return }
            logger.debug("LISTEN \(channel) ended; listening again", metadata: ["error": "\(String(reflecting: error))"])
        }
        try? await Task.sleep(for: .milliseconds(500))
    }
}
