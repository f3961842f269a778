"""Words and headers of automatic replies, per class, shape and language: data only.

`autoreply.py` compiles these tables into its rules. A new language or mail program is a new
row, never a new branch of code. Fragments are regular expressions, matched case-insensitively
against text with runs of white space folded to one space. Fragments of languages written with
spaces between words start at a word boundary; those of languages written without (Chinese,
Japanese, Korean with its particles, Thai, Hindi with its vowel signs) match anywhere.
Keep every fragment free of nested repetition: the text is hostile.
"""

from __future__ import annotations

from . import lazy_re as re

# Languages whose words a regex word boundary cannot find.
UNSPACED = frozenset({"zh", "ja", "ko", "th", "hi"})

# --- headers ---------------------------------------------------------------------------------
# Headers that mark an automatic reply, with the value that does (None: any value).
AUTOREPLY_HEADERS: tuple[tuple[str, re.Pattern[str] | None], ...] = (
    ("auto-submitted", re.compile(r"^\s*auto-replied", re.I)),  # RFC 3834 section 5
    ("x-autoreply", None),  # webmail vacation programs (iCloud, Yahoo, many ISPs)
    ("x-autorespond", None),  # cPanel and other autoresponders
    ("x-autoresponder", None),  # various
    # (not X-MS-Exchange-Inbox-Rules-Loop: Exchange inbox rules also forward and redirect;
    # not X-Auto-Response-Suppress alone: Outlook puts it on read receipts and invitations)
    ("x-vacation", None),  # vacation(1)
    ("x-mailer", re.compile(r"vacation|autorespond|auto-?reply", re.I)),
    ("precedence", re.compile(r"^\s*auto[_-]?reply", re.I)),  # old vacation programs, cPanel
    ("x-precedence", re.compile(r"^\s*auto[_-]?reply", re.I)),
    ("x-askversion", None),  # ASK, the Active Spam Killer: only on its confirmation requests
    ("x-delivery-agent", re.compile(r"^\s*tmda\b", re.I)),  # TMDA's confirmation requests
)
# Headers only a mail system's delivery report carries: whatever else it says (Microsoft 365
# marks its reports "Auto-Submitted: auto-replied"), such a message is never an auto-reply.
REPORT_HEADERS: tuple[tuple[str, re.Pattern[str] | None], ...] = (
    ("x-ms-exchange-message-is-ndr", None),  # Exchange and Microsoft 365 non-delivery reports
    ("from", re.compile(r"<\s*microsoftexchange[0-9a-f]{32}@", re.I)),  # their system sender
)
# Headers only a challenge-response program writes on its requests.
CHALLENGE_HEADERS: tuple[tuple[str, re.Pattern[str] | None], ...] = (
    ("x-askversion", None),
    ("x-delivery-agent", re.compile(r"^\s*tmda\b", re.I)),
    ("x-autoreply", re.compile(r"challenge", re.I)),
)

# --- subjects --------------------------------------------------------------------------------
# What a mail program puts before the subject it answers: Outlook/Exchange "Automatic reply:"
# in each of its interface languages, Outlook 2003 "Abwesenheitsnotiz:", Exchange 5.5
# "Out of Office AutoReply:", RT "AutoReply:", Yahoo "Auto Response". A person rarely writes
# these. The Romance languages put the adjective after the noun.
SUBJECT_PREFIXES: dict[str, tuple[str, ...]] = {
    "en": (r"auto[ -]?(?:reply|response|respons)", r"automatic (?:reply|response)",
           r"out of (?:the )?office auto-?reply", r"vacation (?:reply|response|auto-?reply)"),
    "de": (r"automatische antwort", r"autoantwort", r"abwesenheitsnotiz"),
    "fr": (r"r[ée]ponse automatique", r"automatique r[ée]ponse"),
    "es": (r"respuesta autom[aá]tica",),
    "pt": (r"resposta autom[aá]tica",),
    "it": (r"risposta automatica",),
    "ca": (r"resposta autom[àa]tica",),
    "eu": (r"erantzun automatikoa",),
    "ro": (r"r[ăa]spuns automat",),
    "nl": (r"automatisch antwoord", r"automatische antwoord"),
    "da": (r"automatisk svar", r"autosvar"),
    "nb": (r"automatisk svar", r"autosvar"),
    "sv": (r"automatiskt svar", r"autosvar"),
    "is": (r"sj[áa]lfvirkt svar",),
    "fi": (r"automaattinen vastaus",),
    "et": (r"automaatne vastus", r"automaatvastus"),
    "lv": (r"autom[aā]tisk[aā] atbilde",),
    "lt": (r"automatinis atsakymas",),
    "pl": (r"automatyczna odpowied[źz]",),
    "cs": (r"automatick[áa] odpov[ěe]ď",),
    "sk": (r"automatick[áa] odpove[ďd]",),
    "hu": (r"automatikus v[áa]lasz",),
    "sl": (r"samodejni odgovor",),
    "hr": (r"automatski odgovor",),  # also Bosnian and Serbian in Latin letters
    "sr": (r"а[ув]томатски одговор",),  # Serbian "ау", Macedonian "ав"
    "sq": (r"p[ëe]rgjigje automatike",),
    "tr": (r"otomatik (?:yan[ıi]t|cevap)",),
    "el": (r"αυτόματη απάντηση",),
    "ru": (r"автоматический ответ", r"автоответ"),
    "uk": (r"автоматична відповідь",),
    "bg": (r"автоматичен отговор",),
    "be": (r"аўтаматычны адказ",),
    "he": (r"תשובה אוטומטית",),
    "ar": (r"رد تلقائي", r"رد آلي"),
    "fa": (r"پاسخ خودکار",),
    "ur": (r"خودکار جواب",),
    "vi": (r"tr[ảa] l[ờo]i t[ựu] đ[ộo]ng",),
    "id": (r"balasan otomatis",),
    "ms": (r"balasan automatik", r"jawapan automatik"),
    "tl": (r"awtomatikong tugon",),
    "hi": (r"स्वचालित उत्तर", r"स्वतः उत्तर"),
    "th": (r"ตอบกลับอัตโนมัติ",),
    "ko": (r"자동\s*(?:응답|회신)",),
    "ja": (r"自動応答", r"自動返信", r"自動回答"),
    "zh": (r"自动回复", r"自動回覆", r"自動回復", r"自动答复"),
}
# Lotus Notes (and Domino's translations) answer "<Name> is out of the office." as the whole
# subject.
NOTES_SUBJECTS: dict[str, tuple[str, ...]] = {
    "en": (r"is out of the office",),
    "de": (r"ist au(?:ß|ss)er haus", r"ist nicht im b[üu]ro"),
    "fr": (r"est absente? du bureau",),
    "es": (r"est[áa] fuera de la oficina",),
    "pt": (r"est[áa] fora do escrit[óo]rio",),
    "it": (r"[èe] fuori (?:ufficio|sede)",),
    "nl": (r"is niet op kantoor",),
    "sv": (r"[äa]r inte p[åa] kontoret",),
    "da": (r"er ikke p[åa] kontoret",),
    "pl": (r"jest poza biurem",),
}
# Words of an absence: a mail program's prefix in some languages, but also what a person
# writes to colleagues ("Abwesenheit: Urlaub 12.-16.8.", "Out of office: Anna (annual leave)").
ABSENCE_SUBJECT_WORDS: dict[str, tuple[str, ...]] = {
    "en": (r"out of (?:the )?office", r"away from (?:the )?office",
           r"away from (?:my )?(?:e-?)?mail", r"on vacation", r"on leave", r"on holiday"),
    "de": (r"abwesenheit", r"abwesend", r"nicht im büro", r"außer haus"),
    "fr": (r"absence", r"absent", r"en congé", r"en vacances", r"hors du bureau"),
    "es": (r"fuera de la oficina", r"ausente", r"fuera de oficina"),
    "it": (r"fuori (?:sede|ufficio)", r"assente"),
    "nl": (r"afwezig", r"niet aanwezig"),
    "pt": (r"ausência", r"fora do escritório"),
    "sv": (r"frånvaro", r"ej på kontoret"),
    "nb": (r"fravær",),
    "pl": (r"nieobecno[śs][ćc]",),
    "ru": (r"отпуск", r"нет на месте", r"вне офиса"),
    "ja": (r"不在",),
    "zh": (r"不在", r"休假中"),
    "ko": (r"부재\s*중",),
}
# A subject that is only these words is also how a person tells colleagues of an absence
# ("Out of office", "On vacation"): alone, it takes a reference to the message answered.
BARE_ABSENCE_WORDS = (r"out of (?:the )?office", r"on vacation", r"on leave", r"on holiday",
                      r"absence", r"absent", r"abwesend", r"abwesenheit", r"ausente",
                      r"assente", r"afwezig", r"frånvaro", r"fravær")

# --- words to the sender ---------------------------------------------------------------------
# What an automatic reply says to the one who wrote: about "your message", thanks for it.
# A subject's words without these are a topic ("Out of office: facilities closed Friday").
TO_THE_SENDER: dict[str, tuple[str, ...]] = {
    "en": (r"your (?:mail|message|e-?mail)\b", r"thank(?:s| you) for your (?:mail|message|"
           r"e-?mail|note|enquiry|inquiry)", r"thank(?:s| you) for (?:contacting|writing)",
           r"(?:message|e-?mail) you sent\b", r"you (?:recently )?sent (?:a|an) (?:message|"
           r"e-?mail)"),
    "de": (r"ihre (?:e-?mail|nachricht)\b", r"vielen dank für ihre"),
    "fr": (r"votre (?:message|courriel)\b", r"merci (?:pour|de) votre"),
    "es": (r"su (?:mensaje|correo)\b", r"gracias por su"),
    "nl": (r"uw (?:e-?mail|bericht)\b", r"bedankt voor uw"),
    "it": (r"(?:il )?suo messaggio\b", r"grazie per (?:il suo|la sua)"),
    "pt": (r"sua mensagem\b", r"seu e-?mail\b", r"obrigad[oa] pel[oa] (?:sua|seu)"),
    "sv": (r"tack för ditt (?:mejl|meddelande|e-?postmeddelande)",),
    "da": (r"tak for din (?:mail|e-?mail|besked|henvendelse)",),
    "nb": (r"takk for (?:e-?posten|din e-?post|meldingen)",),
    "fi": (r"kiitos viestistäsi", r"kiitos sähköpostistasi"),
    "pl": (r"dziękuj(?:ę|emy) za (?:wiadomość|e-?mail|kontakt)",),
    "cs": (r"děkuji za (?:váš|vaši) (?:e-?mail|zprávu)",),
    "hu": (r"köszönöm (?:levelét|üzenetét)",),
    "tr": (r"mesaj[ıi]n[ıi]z i[çc]in te[şs]ekk[üu]r",),
    "ru": (r"спасибо за (?:ваше )?(?:письмо|сообщение)", r"ваше (?:письмо|сообщение)\b"),
    "ja": (r"メールありがとうございます", r"ご連絡ありがとうございます",
           r"お問い合わせ(?:いただき)?ありがとうございます"),
    "zh": (r"感谢您的来信", r"謝謝您的來信", r"感謝您的來信", r"您的邮件", r"您的郵件"),
    "ko": (r"메일 감사합니다", r"문의해 주셔서 감사합니다"),
}
# The owner speaking in the first person.
FIRST_PERSON: dict[str, tuple[str, ...]] = {
    "en": (r"i am\b", r"i'm\b", r"i will\b", r"i'll\b", r"i shall\b", r"i won't\b",
           r"i have limited", r"when i return", r"until i return"),
    "de": (r"ich bin\b", r"ich werde\b"),
    "fr": (r"je suis\b", r"je serai\b"),
    "es": (r"estaré\b", r"estoy\b"),
    "it": (r"sono\b", r"sarò\b"),
    "nl": (r"ik ben\b",),
    "sv": (r"jag är\b",),
    "nb": (r"jeg er\b",),
    "da": (r"jeg er\b",),
    "pt": (r"estou\b", r"estarei\b"),
    "pl": (r"jestem\b", r"będę\b"),
}

# --- classes of automatic reply, by their words ------------------------------------------------
# An absence in the owner's first person (vacation, leave, travel): trusted on a message that
# a program marked automatic (Auto-Submitted, X-Auto-Response-Suppress, Precedence: junk, the
# null sender), because a person writes the same to a colleague.
ABSENCE_PHRASES: dict[str, tuple[str, ...]] = {
    "en": (r"(?:i am|i'm|i will be|i'll be|i shall be) (?:currently |now )?(?:out of (?:the )?"
           r"office|away|on (?:vacation|holiday|leave|annual leave|parental leave|maternity "
           r"leave|paternity leave|sick leave|a business trip)|travel?ling|at a conference|"
           r"off work|not in the office)",
           r"limited access to (?:my )?e-?mail",
           r"will respond (?:to your (?:message|e-?mail) )?(?:as soon as|when|upon)",
           r"(?:when|until|once) i(?:'m| am) back", r"(?:when|until) i return",
           r"upon my return", r"on my return",
           r"i will not be reading my (?:e-?)?mail"),  # vacation(1)'s default message
    "de": (r"ich bin (?:bis|ab|vom|seit) .{0,40}(?:nicht|abwesend|urlaub)",
           r"ich werde .{0,40}nicht im büro", r"ich bin (?:derzeit |zurzeit )?(?:im urlaub|"
           r"abwesend|nicht im büro|auf (?:geschäfts|dienst)reise)"),
    "fr": (r"je suis (?:actuellement )?(?:absente?|en congés?|en vacances|en déplacement)",
           r"je serai (?:absente?|en congés?|de retour)"),
    "es": (r"(?:estaré|estoy|me encuentro) (?:ausente|fuera|de vacaciones)",),
    "it": (r"(?:sono|sarò) (?:fuori|assente|in ferie)",),
    "nl": (r"ik ben (?:afwezig|met vakantie|tot en met .{0,30}afwezig|niet op kantoor)",),
    "pt": (r"(?:estou|estarei) (?:de férias|ausente|fora)",),
    "sv": (r"jag är (?:på semester|ledig|tjänstledig|föräldraledig|bortrest|på tjänsteresa)",),
    "nb": (r"jeg er (?:på ferie|på reise|borte|ute av kontoret)",),
    "da": (r"jeg er på (?:ferie|barsel|forretningsrejse)",),
    "fi": (r"olen (?:lomalla|poissa|matkoilla|vuosilomalla)",),
    "pl": (r"jestem na urlopie", r"będę nieobecn[ya]"),
    "cs": (r"jsem na dovolené",),
    "hu": (r"szabadságon vagyok", r"nem tartózkodom az irodában"),
    "tr": (r"(?:yıllık )?izindeyim", r"ofis dışındayım", r"tatildeyim"),
    "ro": (r"sunt în concediu",),
    "el": (r"βρίσκομαι σε άδεια",),
    "ru": (r"я в отпуске", r"я нахожусь в отпуске", r"нахожусь в отпуске"),
    "uk": (r"я у відпустці",),
}
# An address that is gone, moved or left behind, in the words of its owner's auto-responder.
DEPARTURE_PHRASES: dict[str, tuple[str, ...]] = {
    "en": (r"(?:mailbox|address|account|inbox) (?:is|will be) no longer (?:monitored|in use|"
           r"active|checked|read|used)", r"is no longer (?:monitored|in use)",
           r"(?:my|our|the) (?:e-?mail )?address has changed", r"my new (?:e-?mail )?address is",
           r"(?:is|am) no longer (?:with|employed (?:by|at|with)|working (?:for|at|with))",
           r"(?:has|have) left (?:the company|the organi[sz]ation|the firm)"),
    "de": (r"adresse hat sich geändert", r"wird nicht mehr (?:genutzt|gelesen|abgerufen|"
           r"verwendet)", r"(?:hat|haben) (?:das unternehmen|die firma) verlassen",
           r"(?:ist|bin) nicht mehr (?:im unternehmen|bei uns|für uns tätig)"),
    "fr": (r"n'est plus (?:utilisée|consultée|active|valide|en service)",
           r"ne fait plus partie", r"a quitté (?:la société|l'entreprise)", r"ne travaille plus"),
    "es": (r"ya no (?:se utiliza|se revisa|está activa|trabaja|forma parte)",),
    "pt": (r"n[ãa]o faz mais parte", r"n[ãa]o trabalha mais", r"deixou a empresa",
           r"n[ãa]o é mais utilizad[oa]", r"já não (?:trabalha|faz parte)"),
    "it": (r"non lavora più", r"non fa più parte", r"non è più (?:attiva|utilizzata|in uso)"),
    "nl": (r"niet meer werkzaam", r"is niet meer in gebruik", r"werkt niet meer bij"),
    "sv": (r"arbetar inte längre", r"används inte längre"),
    "da": (r"arbejder ikke længere", r"er fratrådt", r"bruges ikke længere"),
    "nb": (r"jobber ikke lenger", r"er ikke lenger i bruk"),
    "fi": (r"ei enää työskentele", r"ei ole enää käytössä"),
    "pl": (r"nie pracuje już", r"nie jest już (?:obsługiwany|używany|aktywny)"),
    "cs": (r"(?:již|už) nepracuje",),
    "hu": (r"már nem dolgozik",),
    "ro": (r"nu mai lucrează",),
    "el": (r"δεν εργάζεται πλέον",),
    "tr": (r"artık (?:şirketimizde|çalışmamaktadır|kullanılmamaktadır)",),
    "ru": (r"больше не работает", r"больше не используется"),
    "uk": (r"більше не працює",),
    "ja": (r"退職いたしました", r"退職しました", r"退社いたしました"),
    "zh": (r"已离职", r"已離職", r"不再使用"),
    "ko": (r"퇴사하였습니다", r"퇴사했습니다"),
}
# Nobody reads the mailbox that answered ("this mailbox is not monitored"). Only the kind of
# reply: a notification's footer says the same, so these never claim a message alone.
UNMONITORED_PHRASES: dict[str, tuple[str, ...]] = {
    "en": (r"(?:mailbox|address|inbox|account) is (?:not |un)monitored",
           r"unmonitored (?:mailbox|address|inbox|account)",
           r"(?:mailbox|address|inbox) is not (?:read|checked|attended)"),
    "de": (r"(?:postfach|adresse|mailbox) wird nicht (?:überwacht|gelesen|betreut|bearbeitet)",),
    "fr": (r"(?:boîte|adresse)[^.]{0,30} n'est pas (?:surveillée|consultée|lue)",),
    "es": (r"(?:buzón|dirección|cuenta)[^.]{0,30} no (?:es|está) (?:monitoread|supervisad|"
           r"revisad)",),
    "it": (r"non (?:è|viene) (?:presidiata|monitorata|letta)",),
    "pt": (r"n[ãa]o é (?:monitorad[oa]|lid[oa])",),
    "nl": (r"wordt niet (?:gelezen|bewaakt|gecontroleerd)",),
    "ja": (r"送信専用",),
}
# A receipt of the sender's message (helpdesks, CRMs, shops, role accounts)...
RECEIPT_PHRASES: dict[str, tuple[str, ...]] = {
    "en": (r"(?:we|i)(?: have|'ve)? (?:(?:successfully|just|now) )?received your (?:message|"
           r"e-?mail|mail|request|enquiry|inquiry|query|report|letter|submission|ticket)",
           r"your (?:message|e-?mail|mail|request|enquiry|inquiry|report)\b[^.\n]{0,80}? "
           r"(?:has been|was|is being) (?:received|filed|logged)",
           r"acknowledge (?:that we have received|(?:the )?receipt of) your",
           r"(?:we|will|shall|we'll) (?:answer|respond|reply|get back to you|be in touch)"
           r"[^.]{0,40}? within",  # a desk's promise: "will reply within one business day"
           r"creation of a (?:trouble )?ticket",  # Request Tracker
           r"your (?:ticket|request|case) has been (?:assigned|created|opened|logged)"),
    "de": (r"wir haben ihre (?:nachricht|anfrage|e-?mail) erhalten",
           r"(?:melden|antworten) (?:wir )?uns innerhalb",
           r"ihre (?:nachricht|anfrage|e-?mail) ist bei uns eingegangen"),
    "fr": (r"nous avons (?:bien )?reçu votre",),
    "es": (r"hemos recibido (?:su|tu) (?:mensaje|correo|solicitud|consulta|petición|e-?mail)",),
    "pt": (r"recebemos (?:a )?(?:sua|seu) (?:mensagem|solicitação|e-?mail|contato)",),
    "it": (r"abbiamo ricevuto (?:il suo|la sua|il tuo|la tua)",),
    "nl": (r"we hebben uw (?:bericht|e-?mail|vraag) ontvangen",),
    "sv": (r"vi har (?:tagit emot|mottagit) ditt (?:ärende|mejl|meddelande|e-?postmeddelande)",),
    "da": (r"vi har modtaget din (?:henvendelse|mail|e-?mail|besked)",),
    "nb": (r"vi har mottatt (?:din|henvendelsen)",),
    "fi": (r"olemme vastaanottaneet (?:viestisi|yhteydenottosi)",),
    "pl": (r"otrzymaliśmy (?:twoją|państwa|pana|pani) (?:wiadomość|zgłoszenie)",),
    "cs": (r"obdrželi jsme (?:váš|vaši)",),
    "hu": (r"megkaptuk (?:üzenetét|levelét|megkeresését)",),
    "ro": (r"am primit (?:mesajul|solicitarea)",),
    "el": (r"λάβαμε το μήνυμά σας",),
    "tr": (r"talebinizi aldık", r"talebiniz alınmıştır", r"mesajınızı aldık"),
    "ru": (r"(?:мы )?получили ваше (?:обращение|письмо|сообщение)",
           r"ваше обращение принято", r"ваша заявка принята"),
    "ar": (r"تلقينا رسالتك", r"تم استلام رسالتك", r"استلمنا رسالتك"),
    "he": (r"קיבלנו את (?:פנייתך|הודעתך)",),
    "vi": (r"đã nhận được (?:email|yêu cầu|thư|tin nhắn) của (?:bạn|quý khách)",),
    "id": (r"(?:kami )?telah menerima (?:pesan|email|permintaan) anda",),
    "ja": (r"お問い合わせを受け付けました", r"受け付けいたしました", r"メールを受信いたしました"),
    "zh": (r"已收到您的", r"已經收到您的", r"已收到你的"),
    "ko": (r"접수되었습니다",),
}
# ...counts with the message's word that a program wrote it, or a reference it gave the matter.
AUTOMATED_PHRASES: dict[str, tuple[str, ...]] = {
    "en": (r"(?:this is an?|an?|this) (?:automated|automatic|automatically generated|"
           r"auto-?generated) (?:response|reply|acknowledge?ment|confirmation|answer|message)",
           r"automatically generated in response", r"ticket has been (?:created|opened|logged)"),
    "de": (r"automatisch (?:erstellt|generiert|versendet)", r"automatische (?:antwort|nachricht)",),
    "fr": (r"(?:message|réponse) automatique", r"généré automatiquement"),
    "es": (r"(?:mensaje|respuesta) automátic[oa]", r"generado automáticamente"),
    "pt": (r"(?:mensagem|resposta) automática", r"gerad[ao] automaticamente"),
    "it": (r"(?:messaggio|risposta) (?:generat[oa] )?automatic", r"generat[oa] automaticamente"),
    "nl": (r"automatisch (?:antwoord|bericht|gegenereerd)",),
    "sv": (r"automatiskt (?:svar|meddelande|genererat)",),
    "da": (r"automatisk (?:svar|besked|genereret)",),
    "ru": (r"автоматическое (?:сообщение|письмо|уведомление)", r"сгенерировано автоматически"),
    "tr": (r"otomatik olarak gönderil", r"otomatik (?:mesaj|e-posta)"),
    "vi": (r"email tự động",),
    "id": (r"dikirim secara otomatis", r"pesan otomatis"),
    "ja": (r"自動送信", r"自動返信", r"自動配信"),
    "zh": (r"自动回复", r"自動回覆", r"系统自动", r"系統自動"),
    "ko": (r"자동\s*응답", r"자동\s*발송"),
}
# Words for a helpdesk's reference, then the reference itself: "ticket #12345",
# "Numer zgłoszenia: 2025/08/1187", "受付番号：TK-20250811-0042".
TICKET_WORDS: dict[str, tuple[str, ...]] = {
    "en": (r"ticket", r"case", r"request", r"incident", r"reference"),
    "de": (r"ticket", r"vorgang(?:s-?nummer)?", r"anfrage(?:-?nummer)?"),
    "fr": (r"ticket", r"dossier", r"demande", r"num[ée]ro"),
    "es": (r"ticket", r"caso", r"solicitud", r"n[úu]mero", r"radicado"),  # Colombia: radicado
    "pt": (r"protocolo", r"chamado", r"n[úu]mero", r"processo"),
    "it": (r"richiesta", r"pratica", r"ticket"),
    "nl": (r"ticket(?:nummer)?", r"zaak(?:nummer)?", r"referentie"),
    "sv": (r"ärende(?:nummer)?",),
    "da": (r"sag(?:snummer)?",),
    "nb": (r"sak(?:snummer)?",),
    "pl": (r"(?:numer )?zgłoszeni[ae]",),
    "ru": (r"(?:номер )?(?:заявки|обращения)", r"заявка"),
    "tr": (r"talep numaran[ıi]z", r"talep numaras[ıi]"),
    "any": (r"[\[(]#", r"№"),  # a bracketed "[#48213]", "(#55123)"; the numero sign
    "vi": (r"mã (?:yêu cầu|phiếu)",),
    "id": (r"(?:nomor )?tiket",),
    "ar": (r"رقم (?:التذكرة|الطلب)",),
    "ja": (r"受付番号", r"お問い合わせ番号"),
    "zh": (r"工单号", r"工單號", r"受理编号"),
    "ko": (r"접수\s*번호",),
}
# The reference after a ticket word: a number of three or more digits, maybe after letters.
TICKET_NUMBER = r"(?:\s*(?:number|no\.?|nr\.?|n\.|nº|#|№))?\s*[:：#№(]?\s*(?:[A-Z]{1,5}-)?\d{3,}"
# Role accounts (RFC 2142 and the usual business ones): what they send in answer to a
# message, saying they received it, is an acknowledgement whoever pressed the button.
ROLE_LOCAL_PARTS = (
    "support", "help", "helpdesk", "service", "customerservice", "customer-service", "care",
    "info", "contact", "hello", "sales", "enquiries", "inquiries", "office", "billing",
    "accounts", "kundenservice", "kontakt", "vertrieb", "klantenservice", "kundeservice",
    "kundtjanst", "servicio", "atencion", "suporte", "assistenza", "destek", "cs")

# --- challenge-response requests ---------------------------------------------------------------
# Four things such a request says; two of them make one (TMDA, ASK, Boxbe, SpamArrest,
# Mailblocks, qurb, ChoiceMail, EarthLink spamBlocker, Mailinblack, UOL AntiSpam...):
# the sender's message waits...
CHALLENGE_HOLD: dict[str, tuple[str, ...]] = {
    "en": (r"your (?:e-?mail|message|mail)\b[^.]{0,80}?\b(?:is|has been|was|will be) (?:being |"
           r"now )?(?:held|queued|quarantined|pending|waiting|awaiting|on hold|moved to a "
           r"holding|delivered (?:as soon as|once|when|after) you)",
           r"awaiting (?:your )?(?:verification|confirmation)",
           r"(?:held|waits?|waiting) (?:in quarantine )?until (?:you|they) (?:verify|confirm|"
           r"register|reply|do)",
           r"(?:the )?(?:message|e-?mail) you sent requires",
           r"not delivered to [^.]{0,40} because you are not on"),
    "de": (r"(?:ihre )?(?:nachricht|e-?mail)[^.]{0,60}(?:wurde zurückgehalten|wartet auf "
           r"(?:bestätigung|freigabe)|zurückgestellt)",),
    "fr": (r"votre message[^.]{0,60}est en attente (?:de (?:validation|confirmation|"
           r"vérification))?",),
    "es": (r"su mensaje[^.]{0,60}(?:está retenido|pendiente de (?:verificación|confirmación))",),
    "pt": (r"sua mensagem[^.]{0,60}(?:está aguardando|aguarda) (?:confirmação|verificação)",),
    "it": (r"il suo messaggio[^.]{0,60}(?:è in attesa|trattenuto)",),
    "nl": (r"uw bericht[^.]{0,60}(?:wordt vastgehouden|wacht op bevestiging)",),
}
# ...because the owner screens senders against spam...
CHALLENGE_SCREENING: dict[str, tuple[str, ...]] = {
    "en": (r"\b(?:i|she|he|they|[\w.'-]+) (?:use|uses|am using|is using|am protected by|"
           r"is protected by) [\w .-]{1,40}? to (?:block|stop|screen|filter|fight|protect)",
           r"protecting (?:myself|me) from (?:receiving )?(?:junk|spam|unsolicited)",
           r"screens? (?:e-?mail|mail|messages) from (?:new|unknown) senders",
           r"screen unknown senders", r"challenge[- ]response",
           r"to (?:control|fight|reduce|stop|block) (?:spam|junk)",
           r"(?:allow|accept)s? (?:incoming )?(?:messages|mail|e-?mail) only from"),
    "de": (r"anti-?spam-?system", r"spamschutz"),
    "fr": (r"protégée? contre les spams", r"anti-?spam"),
    "es": (r"filtro anti-?spam",),
    "pt": (r"(?:que )?usa o antispam", r"anti-?spam"),
}
# ...and asks the sender to prove it is a person...
CHALLENGE_PROVE: dict[str, tuple[str, ...]] = {
    "en": (r"(?:confirm|verify|prove)[^.]{0,30}\byou (?:are|were) (?:a |an )?(?:real |live )?"
           r"(?:human|person|real person|not a)", r"(?:confirm|verify) (?:that )?you sent",
           r"complete (?:the|this) verification", r"type the code"),
    "de": (r"dass sie (?:ein mensch|kein (?:spam-?programm|roboter|bot)) sind",),
    "fr": (r"que vous n'êtes pas un robot",),
    "es": (r"(?:que )?(?:es usted|eres) una persona",),
    "pt": (r"(?:digite|digitar) os caracteres", r"que você é uma pessoa"),
    "it": (r"che (?:lei )?è una persona",),
}
# ...or to put itself on the owner's list of allowed senders.
CHALLENGE_LIST: dict[str, tuple[str, ...]] = {
    "en": (r"white-?list", r"approved senders?\b", r"allowed senders?\b",
           r"(?:add yourself to|not on|join) (?:my|her|his|their|[\w.'-]+'s?) guest list",
           r"to release your message"),
    "de": (r"liste (?:erlaubter|zugelassener) absender", r"whitelist"),
    "fr": (r"liste blanche", r"votre adresse sera (?:ensuite )?autorisée"),
    "es": (r"lista blanca", r"remitentes autorizados"),
    "pt": (r"lista branca", r"remetentes autorizados"),
}

# --- the quoted original -----------------------------------------------------------------------
# Where a reply starts quoting the message it answers, as mail programs write it in their
# users' languages: a ruled "Original Message" line (Outlook), the quoted message's first
# two header lines (Outlook's "From:/Sent:"), an attribution line ("On ... wrote:", Gmail,
# Thunderbird, Apple Mail). Lines; matched with re.M. An unmarked message that quotes is a
# person's reply; a program's reply is read only above its quote.
QUOTE_RULES = (
    r"original message", r"ursprüngliche nachricht", r"message d'origine", r"mensaje original",
    r"mensagem original", r"messaggio originale", r"oorspronkelijk bericht",
    r"originalmeddelande", r"opprinnelig melding", r"oprindelig meddelelse",
    r"alkuperäinen viesti", r"wiadomość oryginalna", r"původní zpráva", r"eredeti üzenet",
    r"исходное сообщение", r"原始邮件", r"原始郵件", r"元のメッセージ", r"원본 메시지",
    # a forward starts the original too (a person passing an auto-reply on)
    r"forwarded message", r"weitergeleitete nachricht", r"message transféré",
    r"mensaje reenviado", r"mensagem encaminhada", r"messaggio inoltrato",
    r"doorgestuurd bericht", r"vidarebefordrat meddelande", r"転送されたメッセージ")
QUOTE_FROM = (r"from", r"von", r"de", r"da", r"van", r"från", r"fra", r"od", r"feladó", r"от",
              r"发件人", r"寄件者", r"差出人", r"보낸 사람")
QUOTE_SENT = (r"sent", r"date", r"gesendet", r"datum", r"envoyé", r"enviado(?: el)?",
              r"enviada(?: em)?", r"inviato", r"verzonden", r"skickat", r"sendt", r"wysłano",
              r"odesláno", r"elküldve", r"отправлено", r"发送时间", r"日期", r"送信日時",
              r"보낸 날짜")
QUOTE_ATTRIBUTION = (  # "<opening> ... <verb>:" on one line
    (r"on|am|le|el|il|op|em|den|w dniu|dne|в|el día", r"wrote|schrieb|a écrit|escribió|"
     r"ha scritto|schreef|escreveu|skrev|napisał(?:a)?|napsal(?:a)?|написал(?:а)?|kirjoitti|"
     r"írta"),)
QUOTE_ATTRIBUTION_CJK = (r"写道", r"寫道", r"書きました", r"작성")

# --- not an automatic reply: phishing and account notices --------------------------------------
# A message that asks the reader to verify, sign in to or give the password of its OWN
# mailbox or account is phishing (or a provider's account notice), not an automatic reply to
# our mail, whatever its headers claim: a mail system has no business asking it. Never claimed.
ACCOUNT_DEMANDS: dict[str, tuple[str, ...]] = {
    "en": (r"(?:verify|validate|confirm|reactivate|upgrade|re-?validate) your (?:e-?mail |"
           r"web-?mail )?(?:account|mailbox|inbox)",
           r"update your (?:e-?mail |web-?mail )?(?:mailbox|inbox)",
           r"your (?:e-?mail |web-?mail )?(?:account|mailbox|inbox) (?:will be|has been|is being|"
           r"is) (?:deactivated|suspended|closed|disabled|deleted|terminated|blocked|locked|"
           r"not verified|unverified)",
           r"(?:reset|enter|confirm|provide|verify|update|type|with) your (?:e-?mail |current )?"
           r"password", r"(?:unverified|inactive) accounts? (?:are|will be) (?:closed|deleted)",
           r"email password"),
    "de": (r"(?:bestätigen|verifizieren) sie ihr (?:konto|postfach)",
           r"ihr (?:konto|postfach) wird (?:deaktiviert|gesperrt|gelöscht)",
           r"(?:mit ihrem|geben sie ihr) passwort"),
    "fr": (r"(?:confirmez|vérifiez|validez) votre (?:compte|boîte)",
           r"votre (?:compte|boîte)[^.]{0,20} sera (?:désactivée?|suspendue?|supprimée?)",
           r"(?:entrez|saisissez|confirmez) votre mot de passe"),
    "es": (r"(?:verifique|confirme|valide) su cuenta", r"su cuenta será (?:desactivada|"
           r"suspendida|eliminada)", r"(?:introduzca|ingrese|confirme|verifique) su contraseña"),
    "pt": (r"(?:verifique|confirme|valide) sua conta", r"sua conta será (?:desativada|"
           r"suspensa|excluída)", r"(?:digite|informe|confirme) sua senha"),
}
