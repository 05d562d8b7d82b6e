//! Name, place and vehicle pools for the simulated business.

/// First names, with the nicknames people actually sign with.
pub const FIRST_NAMES: &[(&str, &[&str])] = &[
    ("William", &["Bill", "Will"]),
    ("Robert", &["Bob", "Rob"]),
    ("James", &["Jim", "Jimmy"]),
    ("Elizabeth", &["Liz", "Beth"]),
    ("Katherine", &["Kate", "Kathy"]),
    ("Margaret", &["Maggie", "Peggy"]),
    ("Michael", &["Mike"]),
    ("Richard", &["Rick", "Dick"]),
    ("Joseph", &["Joe"]),
    ("Thomas", &["Tom"]),
    ("Charles", &["Charlie"]),
    ("Christopher", &["Chris"]),
    ("Daniel", &["Dan"]),
    ("Matthew", &["Matt"]),
    ("Anthony", &["Tony"]),
    ("Jennifer", &["Jen"]),
    ("Alexander", &["Alex"]),
    ("Patricia", &["Pat", "Trish"]),
    ("Susan", &["Sue"]),
    ("Rebecca", &["Becky"]),
    ("Nicholas", &["Nick"]),
    ("Jonathan", &["Jon"]),
    ("Samuel", &["Sam"]),
    ("Benjamin", &["Ben"]),
    ("Andrew", &["Andy"]),
    ("Edward", &["Ed", "Ted"]),
    ("Victoria", &["Vicky"]),
    ("Emily", &[]),
    ("Olivia", &[]),
    ("Sophie", &[]),
    ("Laura", &[]),
    ("Anna", &[]),
    ("David", &["Dave"]),
    ("Peter", &["Pete"]),
    ("Steven", &["Steve"]),
    ("José", &["Zé"]),
    ("María", &[]),
    ("João", &[]),
    ("Gonçalo", &[]),
    ("Inês", &[]),
    ("Beatriz", &["Bia"]),
    ("Francisco", &["Chico"]),
    ("Zoë", &[]),
    ("Søren", &[]),
    ("Björn", &[]),
    ("Jürgen", &[]),
    ("Łukasz", &[]),
    ("François", &[]),
    ("Renée", &[]),
    ("Siobhán", &[]),
    ("Tarō", &[]),
    ("Yūko", &[]),
    ("Hiroshi", &[]),
    ("Aiko", &[]),
    ("Priya", &[]),
    ("Mohammed", &[]),
    ("Wei", &[]),
    ("Lucas", &[]),
    ("Mateo", &[]),
    ("Noah", &[]),
];

pub const LAST_NAMES: &[&str] = &[
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez",
    "Martinez", "Silva", "Santos", "Ferreira", "Pereira", "Costa", "Oliveira", "Gonçalves",
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Meyer", "Wagner", "Becker", "Schröder",
    "Tanaka", "Suzuki", "Watanabe", "Satō", "Takahashi", "Itō", "Murphy", "O'Brien", "Kelly",
    "Walsh", "Nowak", "Kowalski", "Wójcik", "Dubois", "Lefèvre", "Martin", "Bernard", "Nguyen",
    "Patel", "Khan", "Singh", "Andersen", "Nielsen", "Hansen", "Johansson", "Larsen", "Taylor",
    "Wilson", "Anderson", "Thomas", "Moore", "Jackson", "White", "Harris", "Clark", "Lewis",
    "Robinson", "Walker", "Young", "Allen", "King", "Wright", "Scott", "Green",
];

/// People and companies who pay for someone else's rental.
pub const OTHER_PAYERS: &[&str] = &[
    "Acme Consulting GmbH",
    "Northwind Traders Ltd",
    "Globex Corporation",
    "Initech LLC",
    "Umbrella Events SA",
];

pub const MAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "icloud.com",
    "gmx.de",
    "web.de",
    "sapo.pt",
    "hotmail.co.uk",
    "proton.me",
    "docomo.ne.jp",
];

#[derive(Debug)]
pub struct LocationSpec {
    pub code: &'static str,
    pub name: &'static str,
    pub city: &'static str,
    pub country: &'static str,
    pub timezone: &'static str,
    pub currency: &'static str,
    pub address: &'static str,
    /// Share of the business, in arbitrary units.
    pub weight: u32,
}

pub const LOCATIONS: &[LocationSpec] = &[
    LocationSpec { code: "LIS-APT", name: "Lisbon Airport", city: "Lisbon", country: "PT", timezone: "Europe/Lisbon", currency: "EUR", address: "Alameda das Comunidades Portuguesas, 1700-111 Lisboa", weight: 22 },
    LocationSpec { code: "LIS-CSD", name: "Lisbon Cais do Sodré", city: "Lisbon", country: "PT", timezone: "Europe/Lisbon", currency: "EUR", address: "Praça Duque da Terceira 12, 1200-161 Lisboa", weight: 8 },
    LocationSpec { code: "OPO-APT", name: "Porto Airport", city: "Porto", country: "PT", timezone: "Europe/Lisbon", currency: "EUR", address: "Aeroporto Francisco Sá Carneiro, 4470-558 Maia", weight: 12 },
    LocationSpec { code: "BER-HBF", name: "Berlin Hauptbahnhof", city: "Berlin", country: "DE", timezone: "Europe/Berlin", currency: "EUR", address: "Europaplatz 1, 10557 Berlin", weight: 14 },
    LocationSpec { code: "MUC-APT", name: "Munich Airport", city: "Munich", country: "DE", timezone: "Europe/Berlin", currency: "EUR", address: "Nordallee 25, 85356 München", weight: 10 },
    LocationSpec { code: "LON-LHR", name: "London Heathrow", city: "London", country: "GB", timezone: "Europe/London", currency: "GBP", address: "Northern Perimeter Rd, Hounslow TW6 2QD", weight: 14 },
    LocationSpec { code: "NYC-JFK", name: "New York JFK", city: "New York", country: "US", timezone: "America/New_York", currency: "USD", address: "JFK Access Rd, Jamaica, NY 11430", weight: 12 },
    LocationSpec { code: "TYO-HND", name: "Tokyo Haneda", city: "Tokyo", country: "JP", timezone: "Asia/Tokyo", currency: "JPY", address: "3 Chome-3-2 Hanedakuko, Ota City, Tokyo 144-0041", weight: 8 },
];

pub struct ModelSpec {
    pub make: &'static str,
    pub model: &'static str,
    pub category: &'static str,
    /// Daily rate in euro cents; other currencies are derived from it.
    pub eur_cents_per_day: i64,
}

pub const MODELS: &[ModelSpec] = &[
    ModelSpec { make: "Volkswagen", model: "Polo", category: "economy", eur_cents_per_day: 3500 },
    ModelSpec { make: "Renault", model: "Clio", category: "economy", eur_cents_per_day: 3400 },
    ModelSpec { make: "Toyota", model: "Yaris", category: "economy", eur_cents_per_day: 3600 },
    ModelSpec { make: "Fiat", model: "500", category: "economy", eur_cents_per_day: 3200 },
    ModelSpec { make: "Volkswagen", model: "Golf", category: "compact", eur_cents_per_day: 4800 },
    ModelSpec { make: "Peugeot", model: "308", category: "compact", eur_cents_per_day: 4600 },
    ModelSpec { make: "Ford", model: "Focus", category: "compact", eur_cents_per_day: 4500 },
    ModelSpec { make: "Nissan", model: "Qashqai", category: "suv", eur_cents_per_day: 6900 },
    ModelSpec { make: "Toyota", model: "RAV4", category: "suv", eur_cents_per_day: 7400 },
    ModelSpec { make: "BMW", model: "3 Series", category: "premium", eur_cents_per_day: 9900 },
    ModelSpec { make: "Mercedes-Benz", model: "C-Class", category: "premium", eur_cents_per_day: 10500 },
    ModelSpec { make: "Tesla", model: "Model 3", category: "premium", eur_cents_per_day: 9500 },
    ModelSpec { make: "Ford", model: "Transit", category: "van", eur_cents_per_day: 8900 },
];

/// Converts a euro-cent price into the minor units of `currency`, rounded to a price a company
/// would show (whole units for JPY, which has no minor unit).
pub fn price_in(currency: &str, eur_cents: i64) -> i64 {
    match currency {
        "GBP" => (eur_cents * 86 / 100) / 10 * 10,
        "USD" => (eur_cents * 110 / 100) / 10 * 10,
        "JPY" => (eur_cents * 160 / 100) / 100 * 100,
        _ => eur_cents,
    }
}

/// Minor units per major unit: 1 for zero-decimal currencies.
pub fn minor_per_major(currency: &str) -> i64 {
    match currency {
        "JPY" | "KRW" | "VND" | "CLP" | "ISK" => 1,
        _ => 100,
    }
}

pub const UNRELATED_EVENTS: &[&str] = &[
    "Staff meeting",
    "Fleet maintenance window",
    "Team lunch",
    "Insurance inspector visit",
    "Quarterly inventory count",
    "Car wash contractor",
    "Training: new booking system",
];
