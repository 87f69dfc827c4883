//! Finding the one-time code in an SMS, returned as the user would type it.
//!
//! Plain `std`, linear in the text's length, and it never panics: providers hand us
//! whatever the sender wrote. The rules:
//!
//! - A code is 4–8 digits. A split code — two equal groups of 3 or 4 digits joined by one
//!   hyphen or space (`123-456`, `123 456`, `1234 5678`) — is returned joined (`123456`).
//!   A letter prefix is not part of the code: Google's `G-123456` and Facebook's `FB-12345`
//!   are typed as `123456` and `12345`, so that is what we return. A code followed by a
//!   space and one or two digits keeps the code (`验证码482913 5分钟内有效`).
//! - Digits in other scripts (Arabic-Indic `٤٨٢١`, Persian, Devanagari, Bengali, Thai,
//!   full-width) count and are returned as ASCII (`4821`): every code field accepts ASCII,
//!   and that is what a keyboard types.
//! - Only digits: alphanumeric codes (some Steam messages) are not extracted; the message is
//!   still stored and shown.
//! - Not a code: a number glued to a Latin/Cyrillic/Greek letter (`iPhone15`, `4sgLq1`);
//!   longer runs (> 8 digits); runs joined by `.`, `,`, `:`, `/` or Arabic `٫` `٬` (amounts, dates,
//!   times, versions); other hyphen/space shapes (`2026-11-26`, `555 0100`, `+44 7700 900123`); a
//!   number after `+` (phone), after `/ = ? & _ @ * \` (links, card masks) or before
//!   `/ = & _ @ %`; a number next to a currency sign or code (`₦5000`, `5000 NGN`, `Rs. 500`).
//!   Links are skipped on purpose: services that send one also print the code.
//! - Choosing: a number within 60 characters of a code keyword (`code`, `código`, `код`,
//!   `验证码`, `رمز`, …) in the same sentence wins, then one whose keyword is across a
//!   sentence break, the nearest first. A 19xx/20xx year ranks below those, and an order or
//!   reference number (`#123`, `Order 123`) below everything. With no keyword in reach, the
//!   first other number is taken, so languages we have no keyword for still work; a year or
//!   an order number without a keyword is never a code.

/// Shortest and longest codes recognised, in digits.
const MIN_LEN: usize = 4;
const MAX_LEN: usize = 8;
/// How far (in characters) a keyword may be from a number and still vouch for it.
const KEYWORD_REACH: usize = 60;

/// Lower-case words that announce a code. ASCII ones of three letters or fewer must start a
/// word (`pin` is not `shopping`); the rest may sit inside one (`Bestätigungscode`).
const KEYWORDS: &str = "code codigo código codice kod kode otp pin passcode verif vérif senha \
    clave код пароль κωδικ קוד 验证码 驗證碼 校验码 动态码 确认码 認証 確認 コード 인증 कोड ओटीपी \
    सत्यापन رمز كود کد کوڈ mã doğrulama şifre รหัส";
const CURRENCY_SIGNS: &str = "$€£¥₦₹₽₺₩₫₱₴₪฿₵₲₡¢₸₼₾";
const CURRENCY_WORDS: &str = "usd eur gbp ngn inr rs rp idr brl rub руб tl vnd jpy cny kes ghs \
    zar mxn php pkr egp aed sar naira dollars euros rupees reais pesos";
/// Words before a number that make it something other than a code.
const OTHER_LABELS: &str = "order ref invoice pedido tracking ending заказ no nº";
const SENTENCE_ENDS: &str = ".!?\n。！？";

/// The code in `text`, if any (see the module documentation for the rules).
pub fn extract_code(text: &str) -> Option<String> {
    extract_code_with_hint(text, None)
}

/// Like [`extract_code`], but when the provider knows the code's length only numbers of
/// exactly `expected_length` digits are considered.
pub fn extract_code_with_hint(text: &str, expected_length: Option<usize>) -> Option<String> {
    let chars: Vec<char> = text.chars().map(fold).collect();
    let keywords = KeywordIndex::new(&chars);
    let mut best: Option<((usize, usize, usize), String)> = None;
    for candidate in candidates(&chars) {
        if expected_length.is_some_and(|len| len != candidate.digits.len()) {
            continue;
        }
        // Lowest rank wins: keyword in the same sentence 0, across a break 1, none 4; a year
        // adds 2 and an order number 5; then the nearer keyword, then the earlier number.
        let (tier, distance) = match keywords.nearest(candidate.start, candidate.end) {
            Some((crosses, distance)) => (usize::from(crosses), distance),
            None if candidate.year_like || candidate.labelled => continue,
            None => (4, 0),
        };
        let penalty = 2 * usize::from(candidate.year_like) + 5 * usize::from(candidate.labelled);
        let rank = (tier + penalty, distance, candidate.start);
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((rank, candidate.digits));
        }
    }
    best.map(|(_, digits)| digits)
}

/// Lower-cases a character (one char for one char, so indices stay aligned) and turns any
/// decimal digit we know into its ASCII form.
fn fold(c: char) -> char {
    const ZEROS: [u32; 7] = [0x30, 0x660, 0x6F0, 0x966, 0x9E6, 0xE50, 0xFF10];
    let code = c as u32;
    for zero in ZEROS {
        if (zero..zero + 10).contains(&code) {
            return char::from(b'0' + (code - zero) as u8);
        }
    }
    c.to_lowercase().next().unwrap_or(c)
}

struct Candidate {
    start: usize,
    end: usize,
    digits: String,
    year_like: bool,
    labelled: bool,
}

/// Every digit span that could be a code, in order.
fn candidates(chars: &[char]) -> Vec<Candidate> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let (mut groups, mut separators) = (Vec::new(), Vec::new());
        loop {
            let group_start = i;
            while chars.get(i).is_some_and(char::is_ascii_digit) {
                i += 1;
            }
            groups.push(chars[group_start..i].iter().collect::<String>());
            let joined = chars.get(i + 1).is_some_and(char::is_ascii_digit)
                && matches!(
                    chars[i],
                    '-' | ' ' | '\u{a0}' | '.' | ',' | ':' | '/' | '٫' | '٬'
                );
            if !joined {
                break;
            }
            separators.push(chars[i]);
            i += 1;
        }
        if let Some(candidate) = judge(chars, start, i, &groups, &separators) {
            found.push(candidate);
        }
    }
    found
}

/// Decides whether the span `chars[start..end]` (its digit groups and separators) is a code.
fn judge(
    chars: &[char],
    start: usize,
    end: usize,
    groups: &[String],
    separators: &[char],
) -> Option<Candidate> {
    let before = start.checked_sub(1).map(|i| chars[i]);
    let after = chars.get(end).copied();
    let glued = |c: Option<char>| c.is_some_and(|c| c.is_alphabetic() && (c as u32) < 0x590);
    if glued(before) || glued(after) {
        return None;
    }
    if before.is_some_and(|c| "+/=?&_@*\\".contains(c))
        || after.is_some_and(|c| "/=&_@%".contains(c))
    {
        return None;
    }
    if separators.iter().any(|c| ".,:/٫٬".contains(*c)) {
        return None;
    }
    let digits = match groups {
        [one] => one.clone(),
        [a, b] if a.len() == b.len() && (3..=4).contains(&a.len()) => format!("{a}{b}"),
        // "123456 5" (a code, then "5 minutes" in a language without a word between).
        [a, b] if separators[0] != '-' && a.len().min(b.len()) <= 2 => {
            if a.len() > b.len() {
                a.clone()
            } else {
                b.clone()
            }
        }
        _ => return None,
    };
    if !(MIN_LEN..=MAX_LEN).contains(&digits.len()) || near_currency(chars, start, end) {
        return None;
    }
    let previous = word_before(chars, start);
    Some(Candidate {
        start,
        end,
        year_like: digits.len() == 4 && (digits.starts_with("19") || digits.starts_with("20")),
        labelled: before.is_some_and(|c| c == '#' || c == '№')
            || is_one_of(&previous, OTHER_LABELS),
        digits,
    })
}

/// A currency sign or code next to the number (one space allowed): an amount, not a code.
fn near_currency(chars: &[char], start: usize, end: usize) -> bool {
    let sign_at = |i: Option<usize>| {
        i.and_then(|i| chars.get(i))
            .is_some_and(|c| CURRENCY_SIGNS.contains(*c))
    };
    let space_at = |i: usize| chars.get(i).is_some_and(|c| matches!(c, ' ' | '\u{a0}'));
    let before = start.checked_sub(if start > 0 && space_at(start - 1) {
        2
    } else {
        1
    });
    let after = if space_at(end) { end + 1 } else { end };
    sign_at(before)
        || sign_at(Some(after))
        || is_one_of(&word_before(chars, start), CURRENCY_WORDS)
        || is_one_of(&word_after(chars, end), CURRENCY_WORDS)
}

fn is_one_of(word: &str, list: &str) -> bool {
    !word.is_empty() && list.split_whitespace().any(|w| w == word)
}

/// The (short) word just before `start`, skipping a few spaces and punctuation marks.
fn word_before(chars: &[char], start: usize) -> String {
    let mut i = start;
    while i > 0 && start - i < 3 && " :.#\u{a0}".contains(chars[i - 1]) {
        i -= 1;
    }
    let end = i;
    while i > 0 && end - i < 12 && chars[i - 1].is_alphabetic() {
        i -= 1;
    }
    chars[i..end].iter().collect()
}

/// The (short) word just after `end`, skipping a space or a full stop.
fn word_after(chars: &[char], end: usize) -> String {
    let mut i = end;
    while i < chars.len() && i - end < 2 && " .\u{a0}".contains(chars[i]) {
        i += 1;
    }
    let start = i;
    while i < chars.len() && i - start < 12 && chars[i].is_alphabetic() {
        i += 1;
    }
    chars[start..i].iter().collect()
}

/// Where keywords and sentence ends are, precomputed so each lookup is constant time.
struct KeywordIndex {
    /// For each position, the end of the closest keyword ending at or before it.
    previous_end: Vec<Option<usize>>,
    /// For each position, the start of the closest keyword starting at or after it.
    next_start: Vec<Option<usize>>,
    /// Number of sentence ends before each position.
    sentence_ends: Vec<usize>,
}

impl KeywordIndex {
    fn new(chars: &[char]) -> Self {
        let n = chars.len();
        let (mut starts, mut ends) = (vec![false; n + 1], vec![false; n + 1]);
        for keyword in KEYWORDS.split_whitespace() {
            let keyword: Vec<char> = keyword.chars().collect();
            let must_start_word = keyword.len() <= 3 && keyword.iter().all(char::is_ascii);
            for i in 0..n {
                let word_start = i == 0 || !chars[i - 1].is_alphabetic();
                if chars[i..].starts_with(&keyword) && (word_start || !must_start_word) {
                    starts[i] = true;
                    ends[i + keyword.len()] = true;
                }
            }
        }
        let (mut last, mut next, mut count) = (None, None, 0);
        let previous_end = (0..=n).map(|i| {
            last = if ends[i] { Some(i) } else { last };
            last
        });
        let previous_end = previous_end.collect();
        let next_start = (0..=n).rev().map(|i| {
            next = if starts[i] { Some(i) } else { next };
            next
        });
        let mut next_start: Vec<_> = next_start.collect();
        next_start.reverse();
        let sentence_ends = std::iter::once(0).chain(chars.iter().map(|c| {
            count += usize::from(SENTENCE_ENDS.contains(*c));
            count
        }));
        let sentence_ends = sentence_ends.collect();
        Self {
            previous_end,
            next_start,
            sentence_ends,
        }
    }

    /// The nearest keyword within reach of `start..end`: whether a sentence ends between
    /// them, and how far it is. Same-sentence keywords are preferred over closer ones.
    fn nearest(&self, start: usize, end: usize) -> Option<(bool, usize)> {
        let crosses = |a: usize, b: usize| self.sentence_ends[b] > self.sentence_ends[a];
        let before = self.previous_end[start].map(|k| (crosses(k, start), start - k));
        let after = self.next_start[end].map(|k| (crosses(end, k), k - end));
        [before, after]
            .into_iter()
            .flatten()
            .filter(|&(_, d)| d <= KEYWORD_REACH)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One SMS per line: the expected code (`-` for none), ` | `, the text (`\\n` for a newline).
    const MESSAGES: &str = r"
123456   | <#> Your WhatsApp code: 123-456\nYou can also tap on this link to verify your phone: v.whatsapp.com/123456\nDon't share this code with others\n4sgLq1p5sV6
12345    | Telegram code: 12345\n\nYou can also tap on this link to log in:\nhttps://t.me/login/12345
54321    | Login code: 54321. Do not give this code to anyone, even if they say they are from Telegram!
482913   | G-482913 is your Google verification code.
48291    | FB-48291 is your Facebook confirmation code
482913   | Use 482 913 to verify your Instagram account.
482913   | [TikTok] 482913 is your verification code, valid for 5 minutes. To keep your account safe, never forward this code.
4821     | Your Uber code: 4821. Never share this code. Reply STOP ASAP to 89203 to unsubscribe.
482913   | 482913 is your Amazon OTP. Don't share it with anyone.
4829137  | Use 4829137 as Microsoft account security code
482913   | Your Apple ID Code is: 482913. Don't share it with anyone.\n\n@apple.com #482913 %apple.com
482913   | Your Discord verification code is: 482913
482913   | Your X verification code is 482913.
482913   | PayPal: 482913 is your security code. Don't share your code.
482913   | Your Tinder code is 482913 Don't share @tinder.com #482913
4821     | Your Netflix verification code is 4821. Netflix will never ask you for it.
-        | Your Steam verification code is: M9KXF
4821     | Your code is 4821
4821     | Tu código de Uber es 4821. No lo compartas.
-        | تم خصم ١٢٣٤٫٥٠ ر.س من حسابك
123456   | Tu código de WhatsApp: 123-456. No compartas este código con nadie.
123456   | Seu código do WhatsApp: 123-456. Não compartilhe este código.
123456   | Votre code WhatsApp : 123-456. Ne le partagez avec personne.
123456   | Dein WhatsApp-Code: 123-456. Teile diesen Code nicht.
4821     | Ihr Bestätigungscode lautet 4821 und ist bis 12:30 gültig.
482913   | Il tuo codice Amazon è 482913
12345    | Код подтверждения Telegram: 12345. Никому не давайте код, даже если его требуют от имени Telegram!
4821     | Ваш пароль для входа в VK: 4821
482913   | 【微信】验证码：482913，您正在登录，5分钟内有效。
482913   | 【抖音】验证码482913 5分钟内有效
4821     | 【LINE】認証番号：4821。
482913   | [Web발신] [카카오톡] 인증번호 [482913]를 입력해주세요
482913   | رمز التحقق الخاص بك في WhatsApp هو ٤٨٢٩١٣
4821     | آپ کا کوڈ ۴۸۲۱ ہے
482913   | आपका सत्यापन कोड 482913 है। इसे किसी के साथ साझा न करें।
123456   | आपका OTP १२३४५६ है
4821     | Kode verifikasi Gojek Anda: 4821. JANGAN BERIKAN kode ini ke siapa pun.
482913   | Mã xác thực Zalo của bạn là 482913
482913   | Trendyol doğrulama kodunuz: 482913. Kimseyle paylaşmayın.
482913   | รหัส OTP ของคุณคือ 482913
4821     | Order #98765 confirmed. Your verification code is 4821.
6789     | Your PIN for order #12345 is 6789
2026     | Your code is 2026
12345678 | Your code is 1234 5678
4821     | Bolt: 4821
-        | Welcome to Telegram!
-        | Call us at +1 415 555 0100 for help.
-        | Call us at (415) 555-0100 or +44 7700 900123.
-        | Your appointment is on 2026-11-26 at 12:30.
-        | Meeting moved to 26/11/2026 or 26.11.2026.
-        | Payment of $1,234.56 received. Balance: ₦5000
-        | Your order total is 100.00 EUR, 5000 NGN, Rs. 500, 1500 руб.
-        | Account 1234567890123 credited
-        | Happy New Year 2026!
-        | Open https://t.me/login/12345 or https://x.co/?code=482913
-        | Order #123456 has shipped
-        | Card ****4821 charged
-        | Code 123
";

    #[test]
    fn real_looking_messages() {
        let cases: Vec<(&str, String)> = MESSAGES
            .lines()
            .filter(|line| !line.is_empty())
            .map(|line| line.split_once(" | ").expect("expected | text"))
            .map(|(expected, text)| (expected.trim(), text.replace("\\n", "\n")))
            .collect();
        assert!(cases.len() >= 40);
        for (expected, text) in &cases {
            let expected = Some(*expected).filter(|e| *e != "-");
            assert_eq!(extract_code(text).as_deref(), expected, "in {text:?}");
        }
    }

    #[test]
    fn the_hint_picks_by_length() {
        let text = "482913 is your code. Ref 7890";
        assert_eq!(extract_code(text).as_deref(), Some("482913"));
        assert_eq!(
            extract_code_with_hint(text, Some(6)).as_deref(),
            Some("482913")
        );
        assert_eq!(
            extract_code_with_hint(text, Some(4)).as_deref(),
            Some("7890")
        );
        assert_eq!(extract_code_with_hint(text, Some(5)), None);
    }

    #[test]
    fn odd_input_never_panics() {
        let alphabet: Vec<char> = "1٣۴०0-  +/.:,é验码code#$₦\u{301}İß\n*=G١０кодرمز"
            .chars()
            .collect();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as usize
        };
        let mut inputs: Vec<String> = (0..500)
            .map(|_| {
                (0..next() % 40)
                    .map(|_| alphabet[next() % alphabet.len()])
                    .collect()
            })
            .collect();
        // Every message cut at every character boundary, from either end.
        for text in MESSAGES.lines() {
            for (i, _) in text.char_indices() {
                inputs.extend([text[..i].to_owned(), text[i..].to_owned()]);
            }
        }
        for input in &inputs {
            for hint in [None, Some(0), Some(6)] {
                if let Some(code) = extract_code_with_hint(input, hint) {
                    let plausible = (MIN_LEN..=MAX_LEN).contains(&code.len())
                        && code.bytes().all(|b| b.is_ascii_digit());
                    assert!(plausible, "{code:?} from {input:?}");
                }
            }
        }
        assert_eq!(extract_code(""), None);
        assert_eq!(extract_code(&"9".repeat(100_000)), None);
        let long = "验证码".repeat(10_000) + "1234 " + &"code 1234 ".repeat(20_000);
        assert_eq!(extract_code(&long).as_deref(), Some("1234"));
    }
}
