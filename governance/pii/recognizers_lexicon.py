"""Word lists the recognizers match against: general-purpose, not fitted to any data set.

Countries, nationalities and faiths (NRP), occupations (job titles), honorifics, street
designators (the USPS suffix list plus the street words of other European languages),
organisation suffixes. Everything is lower case; recognizers compare case-insensitively.
"""

from __future__ import annotations


def split_words(spaced: str) -> tuple[str, ...]:
    """The whitespace-separated words of ``spaced``, as written."""
    return tuple(spaced.split())


def _words(block: str) -> frozenset[str]:
    """One entry per line or per ``|``-separated item, lower-cased, blanks dropped."""
    items = (item.strip().lower() for line in block.splitlines() for item in line.split("|"))
    return frozenset(item for item in items if item)


COUNTRIES = _words("""
afghanistan|albania|algeria|andorra|angola|antigua and barbuda|argentina|armenia|australia
austria|azerbaijan|bahamas|bahrain|bangladesh|barbados|belarus|belgium|belize|benin|bhutan
bolivia|bosnia and herzegovina|botswana|brazil|brunei|bulgaria|burkina faso|burundi
cambodia|cameroon|canada|cape verde|central african republic|chad|chile|china|colombia
comoros|congo|costa rica|croatia|cuba|cyprus|czech republic|czechia|denmark|djibouti
dominica|dominican republic|east timor|ecuador|egypt|el salvador|equatorial guinea|eritrea
estonia|eswatini|ethiopia|fiji|finland|france|gabon|gambia|georgia|germany|ghana|greece
greenland|grenada|guatemala|guinea|guinea-bissau|guyana|haiti|honduras|hong kong|hungary
iceland|india|indonesia|iran|iraq|ireland|israel|italy|ivory coast|jamaica|japan|jordan
kazakhstan|kenya|kiribati|kosovo|kuwait|kyrgyzstan|laos|latvia|lebanon|lesotho|liberia
libya|liechtenstein|lithuania|luxembourg|macau|madagascar|malawi|malaysia|maldives|mali
malta|marshall islands|mauritania|mauritius|mexico|micronesia|moldova|monaco|mongolia
montenegro|morocco|mozambique|myanmar|namibia|nauru|nepal|netherlands|new zealand|nicaragua
niger|nigeria|north korea|north macedonia|norway|oman|pakistan|palau|palestine|panama
papua new guinea|paraguay|peru|philippines|poland|portugal|puerto rico|qatar|romania|russia
rwanda|saint lucia|samoa|san marino|saudi arabia|senegal|serbia|seychelles|sierra leone
singapore|slovakia|slovenia|solomon islands|somalia|south africa|south korea|south sudan
spain|sri lanka|sudan|suriname|sweden|switzerland|syria|taiwan|tajikistan|tanzania|thailand
togo|tonga|trinidad and tobago|tunisia|turkey|turkmenistan|tuvalu|uganda|ukraine
united arab emirates|united kingdom|united states|united states of america|uruguay
uzbekistan|vanuatu|vatican city|venezuela|vietnam|yemen|zambia|zimbabwe|england|scotland
wales|northern ireland|great britain|usa|u.s.a.|uk|u.k.|faroe islands
""")

US_STATES = _words("""
alabama|alaska|arizona|arkansas|california|colorado|connecticut|delaware|florida|hawaii
idaho|illinois|indiana|iowa|kansas|kentucky|louisiana|maine|maryland|massachusetts|michigan
minnesota|mississippi|missouri|montana|nebraska|nevada|new hampshire|new jersey|new mexico
new york|north carolina|north dakota|ohio|oklahoma|oregon|pennsylvania|rhode island
south carolina|south dakota|tennessee|texas|utah|vermont|virginia|washington|west virginia
wisconsin|wyoming|district of columbia
""")

# Nationalities, peoples, faiths and political groups (Presidio's NRP), singular and plural.
NRP = _words("""
afghan|albanian|algerian|american|andorran|angolan|argentine|argentinian|armenian
australian|austrian|azerbaijani|bahamian|bahraini|bangladeshi|barbadian|belarusian|belgian
belizean|belizian|beninese|bhutanese|bolivian|bosnian|brazilian|british|bruneian|bulgarian
burmese|burundian|cambodian|cameroonian|canadian|chadian|chilean|chinese|colombian
congolese|croatian|cuban|cypriot|czech|danish|djiboutian|dominican|dutch|ecuadorian|egyptian
emirati|english|eritrean|estonian|ethiopian|fijian|filipino|finnish|french|gabonese|gambian
georgian|german|ghanaian|greek|greenlandic|grenadian|guatemalan|guinean|guyanese|haitian
honduran|hungarian|icelandic|indian|indonesian|iranian|iraqi|irish|israeli|italian|ivorian
jamaican|japanese|jordanian|kazakh|kenyan|korean|kosovar|kuwaiti|kyrgyz|laotian|latvian
lebanese|liberian|libyan|lithuanian|luxembourgish|macedonian|malagasy|malawian|malaysian
maldivian|malian|maltese|mauritanian|mauritian|mexican|moldovan|monegasque|mongolian
montenegrin|moroccan|mozambican|namibian|nepalese|nepali|nicaraguan|nigerian|nigerien
norwegian|omani|pakistani|palestinian|panamanian|paraguayan|peruvian|polish|portuguese
puerto rican|qatari|romanian|russian|rwandan|salvadoran|samoan|saudi|scottish|senegalese
serbian|sierra leonean|singaporean|slovak|slovenian|somali|south african|spanish|sri lankan
sudanese|surinamese|swedish|swiss|syrian|taiwanese|tajik|tanzanian|thai|togolese|tongan
trinidadian|tunisian|turkish|turkmen|ugandan|ukrainian|uruguayan|uzbek|venezuelan
vietnamese|welsh|yemeni|zambian|zimbabwean|arab|kurdish|basque|catalan|flemish|walloon
faroese|greenlander|inuit|maori|aboriginal|hispanic|latino|latina|latinx|roma|romani|sami
berber|tamil|punjabi|bengali|pashtun|uyghur|tibetan|zulu|xhosa|yoruba|igbo|hausa|amish
african american|caucasian|asian|european|african|scandinavian|slavic|balkan
christian|catholic|protestant|orthodox|evangelical|anglican|lutheran|methodist|baptist
presbyterian|mormon|jehovah's witness|muslim|moslem|islamic|sunni|shia|shiite|shii|shiite
jewish|jew|hindu|buddhist|sikh|jain|bahai|baha'i|zoroastrian|taoist|shinto|pagan|wiccan
atheist|agnostic|quaker|adventist|pentecostal|coptic|druze|alawite|rastafarian
democrat|republican|libertarian|socialist|communist|conservative|liberal|green party
labour|labor party|tory|marxist|anarchist|nationalist|zionist
""")


def plural_forms(words: frozenset[str]) -> frozenset[str]:
    """``words`` plus their regular English plurals (saudis, shias, americans...)."""
    extra = set()
    for word in words:
        if word.endswith(("ese", "ish", "ch", "sh", "ss", "swiss")) or " " in word:
            continue
        extra.add(word + ("es" if word.endswith("s") else "s"))
    return words | frozenset(extra)


# Head nouns of job titles; a title is a head noun with up to a few modifiers before it.
OCCUPATIONS = _words("""
accountant|actor|actress|actuary|adjuster|administrator|adviser|advisor|aide|analyst
announcer|appraiser|apprentice|architect|archivist|artist|assembler|assistant
astronomer|athlete|attendant|attorney|auditor|author|baker|banker|barber|barista|bartender
biologist|bookkeeper|broker|builder|butcher|buyer|captain|caretaker|carpenter|cashier
ceo|cfo|chairman|chairperson|chairwoman|chef|chemist|chiropractor|cleaner|clerk|coach
collector|columnist|commissioner|composer|concierge|conductor|consultant|controller|cook
coordinator|copywriter|coroner|correspondent|counselor|counsellor|courier|cto|curator
custodian|dancer|dealer|dentist|deputy|designer|detective|developer|dietitian|director
dispatcher|doctor|drafter|draftsman|driver|economist|editor|educator|electrician|engineer
entrepreneur|estimator|examiner|executive|farmer|firefighter|fisherman|florist|foreman
founder|gardener|geographer|geologist|guard|hairdresser|historian|hostess|housekeeper
hygienist|illustrator|inspector|installer|instructor|interpreter|intern|investigator
janitor|jeweler|journalist|judge|laborer|labourer|landscaper|lawyer|lecturer|librarian
lifeguard|lineman|locksmith|machinist|maid|manager|manicurist|mathematician|mechanic
mediator|midwife|miner|minister|mover|musician|nanny|navigator|negotiator|nurse
nutritionist|officer|operator|optician|optometrist|orderly|painter|paralegal|paramedic
pastor|pathologist|pharmacist|photographer|physician|physicist|physiotherapist|pilot
planner|plumber|poet|policeman|policewoman|porter|postman|president|priest
producer|professor|programmer|promoter|proofreader|psychiatrist|psychologist|publisher
radiographer|rancher|realtor|receptionist|recruiter|referee|reporter|representative
researcher|retailer|roofer|sailor|salesman|salesperson|saleswoman|scientist|sculptor
secretary|sheriff|singer|sociologist|soldier|solicitor|specialist|statistician|steward
stewardess|stockbroker|strategist|superintendent|supervisor|surgeon|surveyor
tailor|teacher|technician|technologist|teller|therapist|trader|trainer|translator|treasurer
tutor|typist|underwriter|upholsterer|usher|veterinarian|waiter|waitress|welder
worker|writer|zoologist
""")

# Courtesy titles and ranks written before a name, as they are written (case matters).
HONORIFICS = split_words(
    "Mr Mrs Ms Miss Mx Dr Prof Rev Fr Sr Sra Srta Sir Dame Lord Lady Hon Capt Col Gen Lt "
    "Sgt Maj Cmdr Adm Gov Sen Rep Pres Herr Frau Mme Mlle Dott Dra Ing Mag"
)

# Street designators written after the street name: the common USPS (Publication 28)
# suffixes and abbreviations, and separate-word designators of other languages.
STREET_SUFFIXES = _words("""
alley|aly|annex|arcade|avenue|ave|av|bay|bayou|beach|bend|bluff|bottom|boulevard|blvd
branch|bridge|brook|brooks|burg|bypass|camp|canyon|cape|causeway|center|centre|circle|cir
circles|cliff|cliffs|close|club|common|commons|corner|corners|course|court|ct|courts|cove
coves|creek|crescent|cres|crest|crossing|crossroad|curve|dale|dam|divide|drive|dr|drives
estate|estates|expressway|expy|extension|extensions|ext|falls|ferry|field|fields|flat|flats
ford|fords|forest|forge|forges|fork|forks|fort|freeway|fwy|garden|gardens|gdns|gateway
glen|glens|green|greens|grove|groves|harbor|harbour|harbors|haven|heights|hts|highway|hwy
hill|hills|hollow|inlet|island|islands|isle|junction|junctions|key|keys|knoll|knolls|lake
lakes|landing|lane|ln|light|lights|loaf|lock|locks|lodge|loop|mall|manor|manors|meadow
meadows|mews|mill|mills|mission|motorway|mount|mountain|mountains|neck|orchard|oval
overpass|parade|park|parks|parkway|pkwy|parkways|pass|passage|path|pike|pine|pines|place
pl|plain|plains|plaza|point|points|port|ports|prairie|promenade|quay|radial|ramp|ranch
rapid|rapids|rest|ridge|ridges|river|road|rd|roads|route|rte|row|rue|run|shoal|shoals
shore|shores|skyway|spring|springs|spur|spurs|square|sq|squares|station|stravenue|stream
street|st|str|streets|summit|terrace|ter|throughway|trace|track|trafficway|trail|trl|trailer
tunnel|turnpike|underpass|union|unions|valley|valleys|viaduct|view|views|village|villages
ville|vista|walk|walks|wall|way|ways|well|wells|wharf|wynd
tér|u.|utca|út|krt.|körút|rkp.|köz|sor|tee|iela|gatve|cesta|trg|stræti|vegur
""")

# Street designators written before the street name (Romance and Slavic languages...).
STREET_PREFIXES = _words("""
rua|rue|avenida|avda.|av.|calle|c/|carrer|camino|carretera|paseo|passeig|plaza|plaça
praça|largo|travessa|estrada|alameda|rambla|ronda|via|viale|vicolo|piazza|piazzale|corso
strada|contrada|chemin|boulevard|bd|allée|impasse|quai|place|route|ul.|ulica|al.|aleja
os.|osiedle|pl.|plac|ulitsa|prospekt|pereulok|bulevar|ulice|náměstí|nám.|namesti|trg
ulica|cesta|odos|leoforos|λ.|οδός|λεωφόρος|straße|strasse
""")

# Endings of one-word street names in Germanic, Nordic, Finnish and Dutch ("Ringvej 144").
STREET_ENDINGS = split_words(
    "straße strasse str. gasse weg allee platz ring damm ufer steig pfad vej gade alle allé "
    "stræde stien sti veien vegen vei gata gatan vägen väg gränd backen torget stigen katu "
    "tie kuja polku kaari straat laan plein gracht dijk kade singel vegur stræti"
)

# Small words that may sit inside place names ("Soto del Barco", "Ostrov nad Ohrí").
PLACE_PARTICLES = _words("""
de|del|della|di|da|do|dos|das|du|des|la|le|les|los|las|el|al|en|nad|na|pod|am|an|im|der
den|van|von|zu|y|e|i|sur|sous|upon|on|under|st.|ste.|saint|sankt|bei
""")

# Words that end organisation names ("Smith Ltd.", "Palantir Technologies").
ORG_SUFFIXES = _words("""
inc|inc.|incorporated|ltd|ltd.|limited|llc|l.l.c.|llp|lp|plc|corp|corp.|corporation|co.
company|gmbh|ag|kg|sa|s.a.|sas|sarl|srl|s.r.l.|spa|s.p.a.|bv|b.v.|nv|n.v.|ab|as|a/s|oy
oyj|pty|pty.|kk|group|holdings|technologies|technology|systems|solutions|partners
associates|bank|insurance|foundation|university|institute|agency|labs|laboratories
studio|studios|consulting|ventures|capital|industries|enterprises|networks|software
services|media|pharmaceuticals|pharma|bioscience|biosciences|analytics|markets|logistics
airlines|motors|foods|energy|trust|fund|society|association|council|committee|hospital
clinic|school|college|academy
""")

# Function words that never sit inside a postal address line or a place name.
STOPWORDS = _words("""
a|an|the|and|or|but|if|then|is|are|was|were|be|been|am|i|you|he|she|it|we|they|me|my|your
his|her|its|our|their|this|that|these|those|to|for|of|in|at|by|with|from|as|into|about
please|can|could|would|should|will|shall|may|might|must|do|does|did|have|has|had|not|no
so|what|which|who|whom|when|where|why|how|here|there|thanks|thank|hello|hi|dear|regards
""")
