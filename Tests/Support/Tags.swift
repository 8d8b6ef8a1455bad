import Testing

extension Tag {
    /// A suite that needs neither root, nor the built `clmnt` binary, nor real users, processes,
    /// servers or the network: pure code over values (and at most a temporary file). These run in
    /// seconds after a build, as any user: `scripts/fast-tests.sh`.
    @Tag public static var fast: Self
}
