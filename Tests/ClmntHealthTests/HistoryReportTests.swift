import ClmntTestSupport
import ClmntCore
import Foundation
import Testing
@testable import ClmntHealth

/// Uptime arithmetic on histories whose right answers are known.
@Suite(.tags(.fast)) struct HistoryReportTests {
    let now = Timestamp.parse("2026-11-28T12:00:00Z")!

    /// A check every 5 minutes going back `count` steps from `now` (oldest first).
    func history(_ count: Int, status: (Int) -> HealthStatus, time: (Int) -> Double? = { _ in 10 }) -> [HealthRecord] {
        (0..<count).map { step in
            let age = Double(count - 1 - step) * 300
            return HealthRecord(timestamp: now.addingTimeInterval(-age), status: status(step), pid: 1, port: 19001,
                                httpStatus: status(step) == .healthy ? 200 : nil, responseTimeMs: status(step) == .healthy ? time(step) : nil)
        }
    }

    @Test func uptimeOverEachWindow() throws {
        // 31 days of checks: 8928. The last 24 h (288 checks + the one exactly 24 h old) hold 12 failures;
        // the 6 days before hold 24 more; older checks are all healthy.
        let total = 31 * 288
        let records = history(total, status: { step in
            let age = total - 1 - step // in 5-minute steps
            if age < 288 && age % 24 == 5 { return .dead }
            if age >= 289 && age < 7 * 288 && age % 72 == 7 { return .unhealthy }
            return .healthy
        })
        let report = HistoryReport(history: LoadedHistory(records: records, archived: nil, warnings: []), now: now)
        let windows = Dictionary(uniqueKeysWithValues: report.windows.map { ($0.label, $0) })
        let day = try #require(windows["24h"])
        #expect(day.checks == 289)
        #expect(day.healthy == 289 - 12)
        #expect(abs(day.uptimePercent! - 277.0 / 289.0 * 100) < 1e-9)
        let week = try #require(windows["7d"])
        let weekFailures = records.suffix(7 * 288 + 1).filter { !$0.status.isHealthy }.count
        #expect(week.checks == 7 * 288 + 1)
        #expect(week.healthy == week.checks - weekFailures)
        #expect(weekFailures > 12)
        let month = try #require(windows["30d"])
        #expect(month.checks == 30 * 288 + 1)
        let all = try #require(windows["all"])
        #expect(all.checks == total)
        #expect(all.healthy == total - weekFailures)
    }

    @Test func responseTimesOfHealthyChecks() throws {
        // Healthy checks answer in 1...100 ms; failures have no time and must not count.
        let records = history(120, status: { $0 % 6 == 5 ? .unhealthy : .healthy }, time: { Double($0 % 100 + 1) })
        let report = HistoryReport(history: LoadedHistory(records: records, archived: nil, warnings: []), now: now)
        let all = try #require(report.windows.last)
        let times = records.filter(\.status.isHealthy).compactMap(\.responseTimeMs).sorted()
        #expect(times.count == 100)
        #expect(all.averageMs == times.reduce(0, +) / 100)
        #expect(all.p95Ms == times[94])
        #expect(HistoryReport.percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20], 95) == 19)
        #expect(HistoryReport.percentile([7], 95) == 7)
        #expect(HistoryReport.percentile([], 95) == nil)
    }

    @Test func incidentsHaveStartEndAndDuration() throws {
        // healthy ×3, dead ×4, healthy ×2, unhealthy ×1, healthy, stopped ×2 (ongoing)
        let pattern: [HealthStatus] = [.healthy, .healthy, .healthy, .dead, .dead, .dead, .dead, .healthy, .healthy,
                                       .unhealthy, .healthy, .stopped, .stopped]
        let records = history(pattern.count, status: { pattern[$0] })
        let report = HistoryReport(history: LoadedHistory(records: records, archived: nil, warnings: []), now: now, limit: 5)
        #expect(report.incidents.count == 3)
        let first = report.incidents[0]
        #expect(first.start == records[3].timestamp)
        #expect(first.end == records[7].timestamp)
        #expect(first.duration == 4 * 300)
        #expect(first.status == .dead)
        #expect(first.checks == 4)
        #expect(report.incidents[1].duration == 300)
        #expect(report.incidents[1].status == .unhealthy)
        let open = report.incidents[2]
        #expect(open.end == nil)
        #expect(open.start == records[11].timestamp)
        #expect(open.duration == now.timeIntervalSince(records[11].timestamp))
        #expect(report.recent.count == 5)
        #expect(report.recent.last == records.last)
    }

    @Test func allTimeIncludesRotatedOutCounts() throws {
        var archived = ArchivedTotals()
        archived.since = now.addingTimeInterval(-90 * 86_400)
        archived.until = now.addingTimeInterval(-60 * 86_400)
        archived.checks = 1000
        archived.healthy = 900
        archived.responseCount = 900
        archived.responseSumMs = 9000 // 10 ms each
        let records = history(100, status: { _ in .healthy }, time: { _ in 20 })
        let report = HistoryReport(history: LoadedHistory(records: records, archived: archived, warnings: []), now: now)
        let all = try #require(report.windows.last)
        #expect(all.checks == 1100)
        #expect(all.healthy == 1000)
        #expect(abs(all.uptimePercent! - 1000.0 / 1100.0 * 100) < 1e-9)
        #expect(abs(all.averageMs! - (9000.0 + 2000.0) / 1000.0) < 1e-9)
        #expect(report.firstCheck == archived.since)
        #expect(report.windows[0].checks == 100)
    }

    @Test func emptyHistory() {
        let report = HistoryReport(history: LoadedHistory(records: [], archived: nil, warnings: []), now: now)
        #expect(report.windows.allSatisfy { $0.checks == 0 && $0.uptimePercent == nil && $0.p95Ms == nil })
        #expect(report.incidents.isEmpty)
        #expect(report.firstCheck == nil)
    }
}
