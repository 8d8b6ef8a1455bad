import ArgumentParser
import ClmntCore

/// The retention flags of `fleet backup`, `fleet prune` and `fleet schedule` (restic's `forget` rules).
struct RetentionOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Keep the newest N clmnt archives of this base dir.", valueName: "n"))
    var keep: Int?

    @Option(help: ArgumentHelp("Keep the newest archive of each of the last N days that have archives.", valueName: "n"))
    var keepDaily: Int?

    @Option(help: ArgumentHelp("Keep the newest archive of each of the last N ISO weeks (Monday to Sunday) that have archives.", valueName: "n"))
    var keepWeekly: Int?

    @Option(help: ArgumentHelp("Keep the newest archive of each of the last N months that have archives.", valueName: "n"))
    var keepMonthly: Int?

    var policy: RetentionPolicy {
        RetentionPolicy(last: keep, daily: keepDaily, weekly: keepWeekly, monthly: keepMonthly)
    }
}
