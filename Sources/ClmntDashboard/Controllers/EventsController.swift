import ClmntCore
import ClmntHealth
import Foundation
import Hummingbird
import ServiceLifecycle

/// `GET /api/events`: Server-Sent Events. On connecting, one `molt` event per molt; then one
/// whenever a molt's check changes (new status or new check), from the store's polling of
/// the state files; a comment every 15 s keeps proxies from closing an idle stream.
/// Each event carries the card's HTML, so the page swaps cards without rendering them itself.
struct EventsController<Store: DashboardStore> {
    let store: Store
    let interval: Duration
    let gate: EventStreamGate

    var endpoints: RouteCollection<DashboardContext> {
        let routes = RouteCollection(context: DashboardContext.self)
        routes.get { _, context in
            // Counted while open (503 beyond the caps); ends with the client (a write fails, at the
            // latest with the next keep-alive) or with the server's graceful shutdown.
            let slot = try gate.enter(context.clientAddress)
            let events = FleetEvents(store: store, interval: interval, slot: slot).cancelOnGracefulShutdown()
            return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-store"],
                            body: ResponseBody(asyncSequence: events))
        }
        return routes
    }

    /// What makes an event: the status and the time of the last check.
    static func signature(_ molt: MoltSnapshot) -> String {
        "\(molt.last?.status.rawValue ?? "-") \(molt.last.map { Timestamp.format($0.timestamp) } ?? "-")"
    }

    static func event(_ molt: MoltSnapshot, fleet: FleetSnapshot) -> JSONOutput {
        .object([
            ("name", .string(molt.molt.name)),
            ("health_status", .optional(molt.last?.status.rawValue)),
            ("status", .string(molt.last.map { MoltsController<Store>.legacyStatus($0.status) } ?? "unknown")),
            ("badge", .string(molt.badge.rawValue)),
            ("last_check", .optional(molt.last?.timestamp)),
            ("card_html", .string(PageRenderer.card(molt, now: fleet.takenAt))),
            ("summary_html", .string(PageRenderer.summary(fleet))),
        ])
    }
}

/// The event stream of one client: polls the store every `interval`, yields the events of molts
/// whose check changed since the last yield (all of them first), or a keep-alive comment after 15 s.
struct FleetEvents<Store: DashboardStore>: AsyncSequence, Sendable {
    typealias Element = ByteBuffer
    let store: Store
    let interval: Duration
    /// Nil for streams no gate counts (tests of the sequence alone).
    var slot: EventStreamGate.Slot? = nil
    static var keepAlive: Duration { .seconds(15) }

    func makeAsyncIterator() -> Iterator { Iterator(store: store, interval: interval, slot: slot) }

    struct Iterator: AsyncIteratorProtocol {
        let store: Store
        let interval: Duration
        let slot: EventStreamGate.Slot?
        var sent: [String: String] = [:]
        var quiet = Duration.zero
        var started = false

        mutating func next() async -> ByteBuffer? {
            if !started {
                started = true
                return ByteBuffer(string: "retry: 3000\n\n")
            }
            var first = sent.isEmpty
            while !Task.isCancelled {
                if !first {
                    do { try await Task.sleep(for: interval) } catch { return nil }
                    quiet += interval
                }
                first = false
                let fleet = await store.fleet()
                var text = ""
                for molt in fleet.molts {
                    let signature = EventsController<Store>.signature(molt)
                    guard sent[molt.molt.name] != signature else { continue }
                    sent[molt.molt.name] = signature
                    text += "event: molt\ndata: \(EventsController<Store>.event(molt, fleet: fleet).compact)\n\n"
                }
                if text.isEmpty && quiet >= FleetEvents.keepAlive { text = ": keep-alive\n\n" }
                if !text.isEmpty {
                    quiet = .zero
                    return ByteBuffer(string: text)
                }
            }
            return nil
        }
    }
}
