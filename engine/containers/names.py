"""Random container names in Docker's adjective_scientist style."""

import secrets

LEFT = [
    "admiring", "adoring", "affectionate", "agitated", "amazing", "angry", "awesome", "beautiful", "blissful",
    "bold", "boring", "brave", "busy", "charming", "clever", "compassionate", "competent", "condescending",
    "confident", "cool", "cranky", "crazy", "dazzling", "determined", "distracted", "dreamy", "eager", "ecstatic",
    "elastic", "elated", "elegant", "eloquent", "epic", "exciting", "fervent", "festive", "flamboyant", "focused",
    "friendly", "frosty", "funny", "gallant", "gifted", "goofy", "gracious", "great", "happy", "hardcore",
    "heuristic", "hopeful", "hungry", "infallible", "inspiring", "intelligent", "interesting", "jolly", "jovial",
    "keen", "kind", "laughing", "loving", "lucid", "magical", "modest", "musing", "mystifying", "naughty",
    "nervous", "nice", "nifty", "nostalgic", "objective", "optimistic", "peaceful", "pedantic", "pensive",
    "practical", "priceless", "quirky", "quizzical", "recursing", "relaxed", "reverent", "romantic", "sad",
    "serene", "sharp", "silly", "sleepy", "stoic", "strange", "stupefied", "suspicious", "sweet", "tender",
    "thirsty", "trusting", "unruffled", "upbeat", "vibrant", "vigilant", "vigorous", "wizardly", "wonderful",
    "xenodochial", "youthful", "zealous", "zen",
]
RIGHT = [
    "albattani", "allen", "almeida", "archimedes", "ardinghelli", "babbage", "banach", "bardeen", "bartik",
    "bassi", "bell", "benz", "bhabha", "black", "blackwell", "bohr", "booth", "borg", "bose", "boyd",
    "brahmagupta", "brattain", "brown", "carson", "cerf", "chandrasekhar", "clarke", "curie", "darwin",
    "davinci", "dijkstra", "dubinsky", "easley", "einstein", "elion", "engelbart", "euclid", "euler", "fermat",
    "fermi", "feynman", "franklin", "galileo", "gates", "goldberg", "goldstine", "goldwasser", "golick",
    "goodall", "hamilton", "hawking", "heisenberg", "hermann", "hodgkin", "hoover", "hopper", "hugle", "hypatia",
    "jackson", "jang", "jennings", "jepsen", "johnson", "joliot", "jones", "kalam", "kapitsa", "keldysh",
    "keller", "kepler", "khorana", "kilby", "kirch", "knuth", "lalande", "lamarr", "lamport", "leakey",
    "leavitt", "lewin", "lichterman", "liskov", "lovelace", "lumiere", "mahavira", "mayer", "mccarthy",
    "mcclintock", "mclean", "meitner", "mendel", "merkle", "minsky", "mirzakhani", "morse", "murdock", "napier",
    "nash", "neumann", "newton", "nobel", "noether", "pare", "pascal", "pasteur", "payne", "perlman", "pike",
    "poincare", "ptolemy", "raman", "ramanujan", "ride", "ritchie", "roentgen", "rosalind", "saha", "sammet",
    "shamir", "shannon", "shaw", "shockley", "sinoussi", "snyder", "spence", "stonebraker", "swanson", "swartz",
    "tesla", "thompson", "torvalds", "turing", "varahamihira", "visvesvaraya", "wescoff", "wiles", "williams",
    "wilson", "wing", "wozniak", "wright", "yalow", "yonath",
]


def random_name() -> str:
    """Return a random adjective_surname name."""
    return f"{secrets.choice(LEFT)}_{secrets.choice(RIGHT)}"
