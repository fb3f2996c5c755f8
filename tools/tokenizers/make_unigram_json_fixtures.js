#!/usr/bin/env node
// Writes the Unigram tokenizer.json fixtures in tests/SoftPrompt.Tests/fixtures/unigram-json/: the SentencePiece models
// of fixtures/sentencepiece/ converted to tokenizer.json the way transformers' convert_slow_tokenizer.py does it (T5's
// current converter, the older layout T5 / flan-t5 repositories on the Hub ship, and the non-legacy layout), and the ids
// Hugging Face's tokenizers library (its Node binding runs the same Rust code as Python's `tokenizers`) gives for a
// corpus and for every vocabulary entry as text. Each variant is a directory holding only tokenizer.json, as a model
// directory without spiece.model does. See tools/tokenizers/README.md for how to run it.
'use strict';
const fs = require('fs');
const path = require('path');

const oracleDir = path.resolve(process.argv[2] || '/tmp/tokoracle');
const { Tokenizer } = require(path.join(oracleDir, 'node_modules', 'tokenizers'));
const version = JSON.parse(fs.readFileSync(path.join(oracleDir, 'node_modules', 'tokenizers', 'package.json'), 'utf8')).version;
const fixtures = path.resolve(__dirname, '../../tests/SoftPrompt.Tests/fixtures');
const out = path.join(fixtures, 'unigram-json');

// ---- The parts of sentencepiece_model.proto the converter reads.
function readProto(bytes) {
  let at = 0;
  const varint = () => {
    let value = 0n, shift = 0n;
    for (;;) { const b = bytes[at++]; value |= BigInt(b & 0x7f) << shift; if (b < 0x80) return value; shift += 7n; }
  };
  const fields = function* (end) {
    while (at < end) {
      const key = Number(varint()), field = key >> 3, wire = key & 7;
      if (wire === 0) yield [field, varint()];
      else if (wire === 1) { yield [field, bytes.subarray(at, at + 8)]; at += 8; }
      else if (wire === 5) { yield [field, bytes.subarray(at, at + 4)]; at += 4; }
      else if (wire === 2) { const length = Number(varint()); const start = at; at += length; yield [field, bytes.subarray(start, start + length)]; }
      else throw new Error(`wire type ${wire}`);
    }
  };
  const nested = (sub, visit) => { const saved = at; const whole = bytes; bytes = sub; at = 0; visit(fields(sub.length)); bytes = whole; at = saved; };
  const model = { pieces: [], modelType: 1, unkId: 0, byteFallback: false, charsmap: Buffer.alloc(0) };
  for (const [field, value] of fields(bytes.length)) {
    if (field === 1) nested(value, items => {
      const piece = { piece: '', score: 0, type: 1 };
      for (const [f, v] of items) {
        if (f === 1) piece.piece = Buffer.from(v).toString('utf8');
        else if (f === 2) piece.score = Buffer.from(v).readFloatLE(0);
        else if (f === 3) piece.type = Number(v);
      }
      model.pieces.push(piece);
    });
    else if (field === 2) nested(value, items => {
      for (const [f, v] of items) {
        if (f === 3) model.modelType = Number(v);
        else if (f === 40) model.unkId = Number(v);
        else if (f === 35) model.byteFallback = v !== 0n;
      }
    });
    else if (field === 3) nested(value, items => { for (const [f, v] of items) if (f === 2) model.charsmap = Buffer.from(v); });
  }
  return model;
}

// ---- tokenizer.json as the converters write it.
const CONTROL = 3, UNKNOWN = 2, USER_DEFINED = 4;
const addedToken = (id, content, special) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special });
const precompiled = model => ({ type: 'Precompiled', precompiled_charsmap: model.charsmap.toString('base64') });
const eosTemplate = eosId => ({
  type: 'TemplateProcessing',
  single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
  pair: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }, { Sequence: { id: 'B', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
  special_tokens: { '</s>': { id: '</s>', ids: [eosId], tokens: ['</s>'] } },
});

// extraIds: T5's <extra_id_N> sentinels, appended to the vocabulary last-first with score 0 and declared as special added tokens.
function convert(model, { normalizer, preTokenizer, decoder, extraIds = 0, postProcessor = null }) {
  const vocab = model.pieces.map(p => [p.piece, p.score]);
  const added = model.pieces.map((p, id) => [p, id])
    .filter(([p]) => p.type === CONTROL || p.type === USER_DEFINED || p.type === UNKNOWN)
    .map(([p, id]) => addedToken(id, p.piece, p.type !== USER_DEFINED));
  for (let i = extraIds - 1; i >= 0; i--) {
    added.push(addedToken(vocab.length, `<extra_id_${i}>`, true));
    vocab.push([`<extra_id_${i}>`, 0]);
  }
  return {
    version: '1.0', truncation: null, padding: null, added_tokens: added, normalizer, pre_tokenizer: preTokenizer,
    post_processor: postProcessor, decoder,
    model: { type: 'Unigram', unk_id: model.unkId, vocab, byte_fallback: model.byteFallback },
  };
}

const metaspace = fields => ({ type: 'Metaspace', replacement: '\u2581', ...fields });
const stripAndCollapse = (collapsed = '\u2581') => [
  { type: 'Strip', strip_left: false, strip_right: true },
  { type: 'Replace', pattern: { Regex: ' {2,}' }, content: collapsed },
];

// ---- The corpus: the SentencePiece fixtures' strings, then what only tokenizer.json has (added tokens in text, the
// Precompiled normalizer's per-grapheme rules, Metaspace splitting, vocabulary entries sentencepiece never matches in text).
const sentencePieceCases = JSON.parse(fs.readFileSync(path.join(fixtures, 'sentencepiece', 't5-style.json'), 'utf8')).cases.map(c => c.text);
const corpus = [...sentencePieceCases,
  '</s>', 'hello</s>world', 'hello </s> world', '<pad><unk></s>', ' <unk> ', '<extra_id_0>', '<extra_id_0> fills <extra_id_1>.',
  'x <extra_id_5>  y', 'the<extra_id_99>end', '<extra_id_100>', '<extra_id_0', '< /s>', '<0x41>', 'a<0x41>b', '<s>', '<sep>foo!!!',
  'foo<sep>', ' foo', '\u2581\u2581hello', 'hello\u2581\u2581world', '\u2581', 'a \u2581 b',
  // Precompiled: a grapheme shorter than 6 bytes is replaced by the rule of its first character(s) as a whole
  'fi\u0301', '\ufb01\u0301', '\u2460\u0301', 'e\u0301\u0301', '\u00a0\u0301', 'A\u030a', '\u1100\u1161\u11a8', '\ud55c\uad6d\uc5b4',
  '\ud83d\udc68\u200d\ud83d\udc69\u200d\ud83d\udc67', '\ud83c\uddef\ud83c\uddf5', '\ud83d\udc4d\ud83c\udffd', 'x\r\ny', '\r\n\r\n', 'a\u200d\u200db',
  '\uff21\u0301\u0301', '\u3300', '\ufdfa', '\u0627\u0644\u0639\u0631\u0628\u064a\u0629\u0651',
  // whitespace: Strip (right only), collapse, Metaspace, WhitespaceSplit
  'a \t b', 'a\u3000\u3000b', 'x  ', '\t', '\n', ' \n ', '  lead', 'trail\t', 'a\u00a0\u00a0b', 'a\u2028b', 'a\u0085b', ' a  b   c    d ',
];

async function idsOf(tokenizer, text) {
  return (await tokenizer.encode(text, null, { addSpecialTokens: false })).getIds();
}

async function writeFixture(name, description, json) {
  const tokenizer = Tokenizer.fromString(JSON.stringify(json));
  const cases = [];
  for (const text of corpus) cases.push({ text, ids: await idsOf(tokenizer, text) });
  // Every vocabulary entry spelled as text (\u2581 as a space), added tokens included.
  const pieces = [];
  for (let id = 0; id < json.model.vocab.length; id++) pieces.push({ id, ids: await idsOf(tokenizer, json.model.vocab[id][0].replaceAll('\u2581', ' ')) });
  // With the post-processor, once, so the test can check where </s> goes.
  const withSpecialTokens = { text: 'hello world', ids: (await tokenizer.encode('hello world', null, { addSpecialTokens: true })).getIds() };
  const dir = path.join(out, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(json, null, 2) + '\n');
  const field = (key, value) => `${JSON.stringify(key)}: ${JSON.stringify(value)}`;
  const list = (key, items) => `${JSON.stringify(key)}: [\n${items.map(item => '  ' + JSON.stringify(item)).join(',\n')}\n]`;
  fs.writeFileSync(path.join(out, `${name}.json`), `{\n${[field('description', description), field('oracle', `tokenizers ${version} (npm)`),
    field('withSpecialTokens', withSpecialTokens), list('cases', cases), list('pieces', pieces)].join(',\n')}\n}\n`);
  console.log(`${name}: ${cases.length} strings, ${pieces.length} vocabulary entries`);
}

async function main() {
  const t5 = readProto(fs.readFileSync(path.join(fixtures, 'sentencepiece', 't5-style.model')));
  const userDefined = readProto(fs.readFileSync(path.join(fixtures, 'sentencepiece', 'unigram-user-defined.model')));
  if (t5.modelType !== 1 || userDefined.modelType !== 1 || t5.charsmap.length === 0 || userDefined.charsmap.length !== 0 || !userDefined.byteFallback)
    throw new Error('the SentencePiece fixtures are not the models this script expects');

  await writeFixture('t5-converter',
    "t5-style.model through transformers' current T5Converter: Precompiled + Strip(right) + Replace(' {2,}' -> '\u2581'), " +
    'Metaspace(prepend_scheme always, split), </s> template, 100 <extra_id_N> sentinels.',
    convert(t5, {
      normalizer: { type: 'Sequence', normalizers: [precompiled(t5), ...stripAndCollapse()] },
      preTokenizer: metaspace({ prepend_scheme: 'always', split: true }),
      decoder: metaspace({ prepend_scheme: 'always', split: true }),
      extraIds: 100, postProcessor: eosTemplate(1),
    }));
  await writeFixture('t5-hub-legacy',
    't5-style.model in the layout t5 / flan-t5 repositories ship: Precompiled alone, WhitespaceSplit then ' +
    'Metaspace(add_prefix_space) (the format before prepend_scheme), </s> template, 100 sentinels.',
    convert(t5, {
      normalizer: precompiled(t5),
      preTokenizer: { type: 'Sequence', pretokenizers: [{ type: 'WhitespaceSplit' }, metaspace({ add_prefix_space: true })] },
      decoder: metaspace({ add_prefix_space: true }),
      extraIds: 100, postProcessor: eosTemplate(1),
    }));
  await writeFixture('unigram-byte-fallback-first',
    'unigram-user-defined.model (byte fallback, user-defined pieces as added tokens, no charsmap) as a non-legacy ' +
    "converter writes it: Strip(right) + Replace(' {2,}' -> '\u2581'), Metaspace(prepend_scheme first).",
    convert(userDefined, {
      normalizer: { type: 'Sequence', normalizers: stripAndCollapse() },
      preTokenizer: metaspace({ prepend_scheme: 'first', split: true }),
      decoder: metaspace({ prepend_scheme: 'first', split: true }),
    }));
  await writeFixture('unigram-never-unsplit',
    "unigram-user-defined.model with the older Replace(' {2,}' -> ' ') and Metaspace(prepend_scheme never, split false).",
    convert(userDefined, {
      normalizer: { type: 'Sequence', normalizers: [{ type: 'Replace', pattern: { Regex: ' {2,}' }, content: ' ' }] },
      preTokenizer: metaspace({ prepend_scheme: 'never', split: false }),
      decoder: metaspace({ prepend_scheme: 'never', split: false }),
    }));
  // Added tokens matched in the normalized text (normalized = true, as some converters write user-defined pieces),
  // two of them swallowing white space, so the raw and the normalized splits both run.
  const normalizedAdded = convert(userDefined, {
    normalizer: { type: 'Sequence', normalizers: stripAndCollapse() },
    preTokenizer: metaspace({ prepend_scheme: 'first', split: true }),
    decoder: metaspace({ prepend_scheme: 'first', split: true }),
  });
  for (const token of normalizedAdded.added_tokens) {
    if (token.special) continue;
    token.normalized = true;
    if (token.content === 'foo') token.lstrip = true;
    if (token.content === '!!!') token.rstrip = true;
  }
  await writeFixture('unigram-normalized-added',
    'unigram-user-defined.model as unigram-byte-fallback-first, its user-defined pieces added with normalized = true ' +
    '(foo with lstrip, !!! with rstrip).', normalizedAdded);
}

main().catch(e => { console.error(e); process.exit(1); });
