public enum ClmntVersion {
    public static let current = "0.1.0"
}
