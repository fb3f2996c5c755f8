#!/usr/bin/env python3
"""Writes the SentencePiece fixtures in tests/SoftPrompt.Tests/fixtures/sentencepiece/.

Google's sentencepiece (Debian's python3-sentencepiece) trains two small models on a corpus generated here, one with
T5's settings (Unigram, nmt_nfkc, no byte fallback) and one with Llama 2's (BPE, byte fallback, identity
normalization, whitespace-only pieces), and records the ids it gives for a corpus of test strings and for every
vocabulary piece as text. The .model files and the ids are committed, so the tests need no Python.
See tools/tokenizers/README.md for how to run it. Deterministic: training runs on one thread, the corpus on a seeded
random generator, so rerunning with the same sentencepiece version leaves the files unchanged.
"""
import json
import os
import random
import sys
import tempfile

import sentencepiece as spm

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../tests/SoftPrompt.Tests/fixtures/sentencepiece')

WORDS = ('the of and to in is was for that with as on by at from his her they this which are be have had not an or '
         'but it were their been has one more first new time would year people some two also only other when after '
         'world hello model prompt token training language learning tuning input output value return function class '
         'while print string number list index data file error result check test case first last value small large '
         'über café naïve résumé straße garçon déjà señor año niño').split()
MULTILINGUAL = ['Добрый день, как дела?', 'Привет мир', '東京は日本の首都です。', '我爱自然语言处理', 'Γειά σου κόσμε',
                'Ελληνικά γράμματα', 'مرحبا بالعالم', 'שלום עולם', 'नमस्ते दुनिया']
CODE = [
    'def f(x):\n    return (x + 1) * 2\n',
    'if (a && (b || c)) { return foo(bar(baz)); }',
    '    for i in range(10):\n        print(i, i ** 2)\n',
    'x = [1, 2, 3]; y = {"a": 1, "b": 2}',
    'while (!done) {\n\tdone = step();\n}',
    'print("Hello!!") # wow!! really!!',
    'assert f(g(1)) == 42',
    '        value = compute(a, b)  # two spaces before the comment',
]


def training_corpus():
    rng = random.Random(13)
    lines = []
    for _ in range(3000):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 14))]
        if rng.random() < 0.3: words[-1] += rng.choice(['!', '!!', '?', '.', ',', ')', '))'])
        if rng.random() < 0.2: words.insert(rng.randrange(len(words)), str(rng.randint(0, 99999)))
        line = ' '.join(words)
        if rng.random() < 0.15: line = '  ' * rng.randint(1, 4) + line  # indentation
        if rng.random() < 0.1: line = line.replace(' ', '   ', 1)
        lines.append(line)
    lines += MULTILINGUAL * 20 + [c.replace('\n', ' ') for c in CODE] * 30
    return lines


# Three closing brackets never occur in training, so ")))" has no piece and ties between "))" + ")" and ")" + "))".
# The ids of these strings (and of every piece as text) are the fixtures.
CASES = [
    '', ' ', '  ', 'hello world', 'Hello world', 'Hello  world', 'Hello   world', 'Hello    world', ' Hello world',
    '   leading spaces', 'trailing spaces   ', 'multiple   spaces    inside', '\tindented\twith tabs',
    'line one\nline two\n\nline four', 'crlf\r\nline', '    return x', '        value = compute(a, b)',
    # unknown characters, alone and in runs
    '☃', '☃☃☃', 'a☃☃b', 'snow ☃☃ man ⛄⛄⛄ done', '𝑥', '𝑥𝑦𝑧 and 𠮷野家', '🙂🙂 emoji 🙂', 'Ꭰ Ꭱ Ꭲ', 'ᚠᚢᚦᚨᚱᚲ',
    # control characters and other code points nmt_nfkc removes or maps
    'a\x00b', 'a\x01b\x02c', 'del\x7fete', 'zero\u200bwidth', '\ufeffbom', 'soft\u00adhyphen', 'x\x0by\x0cz', '\x1b[0m reset',
    'nbsp\u00a0space', 'ideographic\u3000space', 'ﬁne ﬂow', 'ｆｕｌｌｗｉｄｔｈ', '①②③', 'Ⅻ', '㎏', 'é vs e\u0301',
    # ties between equal-score segmentations / equal merges
    'x!!!y', 'x!!y', 'x!!!!y', 'x!!!!!y', 'wow!!!', ')))', '))))', ')))))', 'f(g(h(1)))', '...', '....', '-----',
    'aaa', 'aaaa', '!!!', '???', '   ',
    # digits
    '12345', '3.14159', 'year 2024 and 1999', '٣٤٥', '１２３',
    # multilingual and code
    *MULTILINGUAL, *CODE, 'Ελληνικά και русский и 中文 mixed', 'über café naïve résumé straße',
    'the quick brown fox jumps over the lazy dog', 'THE QUICK BROWN FOX', 'Prompt tuning learns soft prompts.',
]



def random_strings():
    # Mixed scripts, whitespace, control and unknown characters in random order catch what the hand-picked cases miss.
    pool = list('aeiou lnrst   xyzAEIOU!!!)))(((..,,--__') + ['  ', '\t', '\n', '\x01', '\x7f', '\u200b', '\u00a0', 'é',
            'ß', 'ﬁ', 'д', 'ж', 'の', '日', '界', 'α', '☃', '⛄', '𝑥', '🙂', '𠮷', '7', '42', '١', '<sep>', 'foo', '▁']
    rng = random.Random(9)
    return [''.join(rng.choice(pool) for _ in range(rng.randint(1, 24))) for _ in range(300)]


CASES += random_strings()


def train(name, **settings):
    # The model records the input and output paths in trainer_spec: relative names inside the temporary directory
    # keep the bytes the same from run to run.
    here = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        with open('corpus.txt', 'w', encoding='utf-8') as f:
            f.write('\n'.join(training_corpus()) + '\n')
        spm.SentencePieceTrainer.train(input='corpus.txt', model_prefix=name, num_threads=1, minloglevel=2, **settings)
        with open(name + '.model', 'rb') as f:
            model = f.read()
        os.chdir(here)
    with open(os.path.join(OUT, name + '.model'), 'wb') as f:
        f.write(model)
    return spm.SentencePieceProcessor(model_proto=model)


def write_fixture(name, description, sp):
    cases = [{'text': text, 'ids': sp.encode(text)} for text in CASES]
    # Every piece spelled as text (▁ as a space); the special pieces too, as the plain text they are.
    pieces = [{'id': i, 'ids': sp.encode(sp.id_to_piece(i).replace('\u2581', ' '))} for i in range(sp.get_piece_size())]
    fixture = {'description': description, 'oracle': f'sentencepiece {spm.__version__} (python3-sentencepiece)',
               'model': name + '.model', 'cases': cases, 'pieces': pieces}
    with open(os.path.join(OUT, name + '.json'), 'w', encoding='utf-8') as f:
        json.dump(fixture, f, ensure_ascii=False, indent=0)
        f.write('\n')


def main():
    os.makedirs(OUT, exist_ok=True)
    t5 = train('t5-style', model_type='unigram', vocab_size=600, normalization_rule_name='nmt_nfkc',
               pad_id=0, eos_id=1, unk_id=2, bos_id=-1, byte_fallback=False, character_coverage=0.9995)
    write_fixture('t5-style', "Unigram with T5's settings: nmt_nfkc, <pad>=0 </s>=1 <unk>=2, no BOS, no byte fallback.", t5)
    llama = train('llama2-style', model_type='bpe', vocab_size=800, normalization_rule_name='identity',
                  byte_fallback=True, split_digits=True, allow_whitespace_only_pieces=True,
                  remove_extra_whitespaces=False, add_dummy_prefix=True, character_coverage=0.9995,
                  unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
    write_fixture('llama2-style', "BPE with Llama 2's settings: byte fallback, split digits, whitespace-only pieces, "
                  'identity normalization, extra whitespace kept, dummy prefix.', llama)
    # Neither T5 nor Llama 2 has user-defined pieces; these small models cover them (and Unigram byte fallback).
    user_defined = ['<sep>', 'foo', '!!!', '\u2581\u2581']
    unigram = train('unigram-user-defined', model_type='unigram', vocab_size=600, normalization_rule_name='identity',
                    byte_fallback=True, user_defined_symbols=user_defined, character_coverage=0.9995)
    write_fixture('unigram-user-defined', 'Unigram with user-defined pieces and byte fallback, identity normalization.', unigram)
    bpe = train('bpe-user-defined', model_type='bpe', vocab_size=600, normalization_rule_name='identity',
                byte_fallback=False, user_defined_symbols=user_defined, remove_extra_whitespaces=False,
                character_coverage=0.9995)
    write_fixture('bpe-user-defined', 'BPE with user-defined pieces, no byte fallback (one <unk> per unknown run).', bpe)


if __name__ == '__main__':
    sys.exit(main())
