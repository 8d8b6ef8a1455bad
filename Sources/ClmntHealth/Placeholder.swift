import ClmntCore
enum HealthPlaceholder {}
