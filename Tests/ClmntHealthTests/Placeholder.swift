import Testing
@testable import ClmntHealth
@Test func placeholderHealth() { #expect(Bool(true)) }
