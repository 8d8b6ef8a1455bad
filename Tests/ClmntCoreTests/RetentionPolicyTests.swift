import ClmntTestSupport
@testable import ClmntCore
import Foundation
import Testing

/// The retention policy (`--keep`, `--keep-daily`, `--keep-weekly`, `--keep-monthly`) over
/// synthetic archive dates, in a time zone with DST (Europe/Berlin: CET +1 in winter), so
/// local days, ISO weeks and months differ from UTC's at their edges.
@Suite("retention policy", .tags(.fast))
struct RetentionPolicyTests {
    static let berlin = TimeZone(identifier: "Europe/Berlin")!

    struct Case: CustomTestStringConvertible, Sendable {
        let label: String
        let policy: RetentionPolicy
        /// Manifest timestamps (also the names); `!` marks an incomplete archive, `?` one without a mark.
        let archives: [String]
        /// The timestamps kept, newest first.
        let kept: [String]
        var newArchive: String? = nil
        var testDescription: String { label }
    }

    static func candidates(_ archives: [String]) -> [RetentionCandidate] {
        archives.map { spec in
            let complete: Bool? = spec.hasSuffix("!") ? false : spec.hasSuffix("?") ? nil : true
            let name = spec.trimmingCharacters(in: CharacterSet(charactersIn: "!?"))
            return RetentionCandidate(name: name, timestamp: name, complete: complete)
        }
    }

    /// Every day from `from` to `to` (inclusive) at 03:15 UTC.
    static func nightly(_ from: String, _ to: String) -> [String] {
        var day = Timestamp.parse(from + "T03:15:00Z")!
        let last = Timestamp.parse(to + "T03:15:00Z")!
        var result: [String] = []
        while day <= last {
            result.append(Timestamp.format(day))
            day += 86_400
        }
        return result
    }

    static let cases: [Case] = [
        Case(label: "--keep N: the N newest",
             policy: RetentionPolicy(last: 2),
             archives: ["2026-11-01T03:15:00Z", "2026-11-03T03:15:00Z", "2026-11-02T03:15:00Z"],
             kept: ["2026-11-03T03:15:00Z", "2026-11-02T03:15:00Z"]),
        Case(label: "daily: the newest of each of the last N days that have archives (gaps skipped, local midnight)",
             policy: RetentionPolicy(daily: 3),
             archives: ["2026-11-01T03:15:00Z", "2026-11-01T15:00:00Z", "2026-11-03T03:15:00Z", "2026-11-07T03:15:00Z",
                        "2026-11-07T21:00:00Z", "2026-11-07T23:30:00Z" /* 00:30 on the 8th in Berlin */],
             kept: ["2026-11-07T23:30:00Z", "2026-11-07T21:00:00Z", "2026-11-03T03:15:00Z"]),
        Case(label: "weekly: ISO weeks across the year end (2027-01-01 is in 2026-W53)",
             policy: RetentionPolicy(weekly: 3),
             archives: ["2026-12-20T10:00:00Z", "2026-12-27T10:00:00Z", "2026-12-28T10:00:00Z", "2027-01-01T10:00:00Z",
                        "2027-01-03T10:00:00Z", "2027-01-04T10:00:00Z"],
             kept: ["2027-01-04T10:00:00Z", "2027-01-03T10:00:00Z", "2026-12-27T10:00:00Z"]),
        Case(label: "weekly: Sunday 23:30 and Monday 00:30 local are two weeks, though the same UTC day",
             policy: RetentionPolicy(weekly: 2),
             archives: ["2027-01-03T12:00:00Z", "2027-01-03T22:30:00Z", "2027-01-03T23:30:00Z"],
             kept: ["2027-01-03T23:30:00Z", "2027-01-03T22:30:00Z"]),
        Case(label: "monthly: local months (22:30Z on Oct 31 is October, 23:30Z is November in Berlin)",
             policy: RetentionPolicy(monthly: 2),
             archives: ["2026-10-15T10:00:00Z", "2026-10-31T22:30:00Z", "2026-10-31T23:30:00Z", "2026-11-15T10:00:00Z"],
             kept: ["2026-11-15T10:00:00Z", "2026-10-31T22:30:00Z"]),
        Case(label: "monthly across a year: months without archives are not counted",
             policy: RetentionPolicy(monthly: 3),
             archives: ["2025-06-10T10:00:00Z", "2025-12-31T10:00:00Z", "2026-01-31T22:59:59Z" /* Jan 31 23:59:59 CET */,
                        "2026-01-31T23:00:00Z" /* Feb 1 00:00 CET */, "2026-03-05T10:00:00Z"],
             kept: ["2026-03-05T10:00:00Z", "2026-01-31T23:00:00Z", "2026-01-31T22:59:59Z"]),
        Case(label: "the rules are a union (restic's example shape: 2 newest, 4 daily, 3 weekly, 3 monthly)",
             policy: RetentionPolicy(last: 2, daily: 4, weekly: 3, monthly: 3),
             archives: nightly("2026-09-20", "2026-11-30"),
             kept: ["2026-11-30T03:15:00Z", "2026-11-29T03:15:00Z", "2026-11-28T03:15:00Z", "2026-11-27T03:15:00Z",
                    "2026-11-22T03:15:00Z", "2026-10-31T03:15:00Z", "2026-09-30T03:15:00Z"]),
        Case(label: "incomplete archives take no slot and stay while newer than the oldest complete one kept",
             policy: RetentionPolicy(daily: 3),
             archives: ["2026-11-01T03:15:00Z", "2026-11-02T03:15:00Z", "2026-11-03T03:15:00Z", "2026-11-04T03:15:00Z",
                        "2026-11-05T03:15:00Z", "2026-11-06T03:15:00Z!", "2026-11-07T03:15:00Z!"],
             kept: ["2026-11-07T03:15:00Z", "2026-11-06T03:15:00Z", "2026-11-05T03:15:00Z", "2026-11-04T03:15:00Z",
                    "2026-11-03T03:15:00Z"]),
        Case(label: "an incomplete archive older than the oldest complete one kept goes",
             policy: RetentionPolicy(daily: 3),
             archives: ["2026-11-01T03:15:00Z", "2026-11-02T03:15:00Z!", "2026-11-03T03:15:00Z", "2026-11-04T03:15:00Z",
                        "2026-11-05T03:15:00Z"],
             kept: ["2026-11-05T03:15:00Z", "2026-11-04T03:15:00Z", "2026-11-03T03:15:00Z"]),
        Case(label: "every archive incomplete: the policy still bounds them",
             policy: RetentionPolicy(daily: 2),
             archives: ["2026-11-01T03:15:00Z!", "2026-11-02T03:15:00Z!", "2026-11-03T03:15:00Z!", "2026-11-04T03:15:00Z!"],
             kept: ["2026-11-04T03:15:00Z", "2026-11-03T03:15:00Z"]),
        Case(label: "a day's complete archive keeps its slot when a newer one of that day is incomplete",
             policy: RetentionPolicy(last: 1, daily: 1),
             archives: ["2026-11-04T03:15:00Z", "2026-11-05T03:15:00Z", "2026-11-05T10:00:00Z!"],
             kept: ["2026-11-05T10:00:00Z", "2026-11-05T03:15:00Z"]),
        Case(label: "an archive without a completeness mark counts as complete",
             policy: RetentionPolicy(last: 1),
             archives: ["2026-11-04T03:15:00Z", "2026-11-05T03:15:00Z?"],
             kept: ["2026-11-05T03:15:00Z"]),
        Case(label: "the new archive stays and counts as the newest, whatever its clock said",
             policy: RetentionPolicy(last: 1, daily: 1),
             archives: ["2026-11-04T03:15:00Z", "2026-11-05T03:15:00Z", "2026-10-01T00:00:00Z"],
             kept: ["2026-10-01T00:00:00Z"], newArchive: "2026-10-01T00:00:00Z"),
    ]

    @Test("policy over synthetic dates", arguments: cases)
    func policy(_ testCase: Case) {
        let decisions = testCase.policy.decide(Self.candidates(testCase.archives), newArchive: testCase.newArchive,
                                               timeZone: Self.berlin)
        #expect(decisions.filter(\.keep).map(\.candidate.name) == testCase.kept)
        #expect(decisions.count == testCase.archives.count, "every archive is decided")
    }

    @Test("reasons name the rule and the local period; incomplete ones say so")
    func reasons() {
        let decisions = RetentionPolicy(last: 1, daily: 2, weekly: 1, monthly: 1).decide(
            Self.candidates(["2026-11-29T23:30:00Z", "2026-11-29T03:15:00Z", "2026-11-28T03:15:00Z!"]), timeZone: Self.berlin)
        let reasons = Dictionary(uniqueKeysWithValues: decisions.map { ($0.candidate.name, $0.reasons) })
        // 23:30Z on Sunday Nov 29 is Monday Nov 30 00:30 in Berlin: a new day, ISO week 49.
        #expect(reasons["2026-11-29T23:30:00Z"] == ["newest 1", "daily 2026-11-30", "weekly 2026-W49", "monthly 2026-11"])
        #expect(reasons["2026-11-29T03:15:00Z"] == ["daily 2026-11-29"])
        // The incomplete one is older than the oldest complete archive kept: it goes.
        #expect(reasons["2026-11-28T03:15:00Z"] == [])
        let incomplete = RetentionPolicy(daily: 1).decide(Self.candidates(["2026-11-28T03:15:00Z", "2026-11-29T03:15:00Z!"]),
                                                          timeZone: Self.berlin)
        #expect(incomplete.map(\.reasons) == [["incomplete, daily 2026-11-29"], ["daily 2026-11-28"]])
    }

    @Test("ISO weeks of the calendar's edge dates")
    func isoWeeks() {
        let cases: [((Int, Int, Int), (Int, Int))] = [
            ((2026, 12, 31), (2026, 53)), ((2027, 1, 1), (2026, 53)), ((2027, 1, 3), (2026, 53)), ((2027, 1, 4), (2027, 1)),
            ((2024, 12, 29), (2024, 52)), ((2024, 12, 30), (2025, 1)), ((2021, 1, 3), (2020, 53)), ((2021, 1, 4), (2021, 1)),
            ((2020, 2, 29), (2020, 9)), ((2026, 11, 30), (2026, 49)), ((1970, 1, 1), (1970, 1)),
        ]
        for (date, expected) in cases {
            let week = RetentionCalendar.isoWeek(year: date.0, month: date.1, day: date.2)
            #expect(week.year == expected.0 && week.week == expected.1, "\(date)")
        }
        for days in [-800_000, -1, 0, 1, 59, 365, 20_000, 2_000_000] {
            let civil = RetentionCalendar.civilFromDays(days)
            #expect(RetentionCalendar.daysFromCivil(year: civil.year, month: civil.month, day: civil.day) == days)
        }
    }

    @Test("counts below 1 or absurdly large are refused; the cron words are the flags")
    func validation() throws {
        for policy in [RetentionPolicy(last: 0), RetentionPolicy(daily: -1), RetentionPolicy(weekly: 0),
                       RetentionPolicy(monthly: -3), RetentionPolicy(daily: 1_000_000)] {
            #expect(throws: BackupError.self) { try policy.validate() }
        }
        try RetentionPolicy(last: 7, daily: 7, weekly: 4, monthly: 12).validate()
        #expect(RetentionPolicy(last: 7, weekly: 4).arguments == ["--keep", "7", "--keep-weekly", "4"])
        #expect(RetentionPolicy(daily: 7, monthly: 12).summary == "7 daily, 12 monthly")
        #expect(RetentionPolicy().isEmpty)
    }
}
