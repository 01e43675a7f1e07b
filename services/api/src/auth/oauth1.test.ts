import { describe, expect, it } from 'vitest';
import {
  baseStringUri,
  formParams,
  OAuthFormatError,
  parseOAuthHeader,
  parseOAuthParams,
  withoutProtocolParams,
  percentEncode,
  sign,
  signatureBaseString,
  signatureMatches,
} from './oauth1.ts';

/** The request of RFC 5849 §3.4.1 (with its query string, form body and Authorization header). */
const RFC_341_HEADER =
  'OAuth realm="Example", oauth_consumer_key="9djdj82h48djs9d2", oauth_token="kkk9d7dh3k39sjv7", ' +
  'oauth_signature_method="HMAC-SHA1", oauth_timestamp="137131201", oauth_nonce="7d8f3e4a", ' +
  'oauth_signature="bYT5CMsGcbgUdFHObYMEfcx6bsw%3D"';
const RFC_341_BASE_STRING =
  'POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26c%2540%3D%26' +
  'c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3DHMAC-SHA1%26' +
  'oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7';

describe('OAuth 1.0a signature base string (RFC 5849)', () => {
  it('when given the request of §3.4.1, then produces the RFC\'s signature base string', () => {
    const header = parseOAuthHeader(RFC_341_HEADER);
    const params = [...formParams('b5=%3D%253D&a3=a&c%40=&a2=r%20b'), ...formParams('c2&a3=2+q'), ...header.params];
    const base = signatureBaseString('POST', baseStringUri('http', 'example.com', '/request'), params);
    expect(base).toBe(RFC_341_BASE_STRING);
    expect(header.signature).toBe('bYT5CMsGcbgUdFHObYMEfcx6bsw=');
  });

  it('when given the requests of §1.2 (whose secrets the RFC gives), then produces the RFC\'s signatures', () => {
    // Temporary credentials request: POST https://photos.example.net/initiate, client secret only.
    const initiate = signatureBaseString('POST', baseStringUri('https', 'photos.example.net', '/initiate'), [
      ['oauth_consumer_key', 'dpf43f3p2l4k3l03'],
      ['oauth_signature_method', 'HMAC-SHA1'],
      ['oauth_timestamp', '137131200'],
      ['oauth_nonce', 'wIjqoS'],
      ['oauth_callback', 'http://printer.example.com/ready'],
    ]);
    expect(sign('HMAC-SHA1', initiate, 'kd94hf93k423kf44')).toBe('74KNZJeDHnMBp0EMJ9ZHt/XKycU=');
    // Protected resource request: GET http://photos.example.net/photos?file=vacation.jpg&size=original.
    const photos = signatureBaseString('GET', baseStringUri('http', 'photos.example.net', '/photos'), [
      ...formParams('file=vacation.jpg&size=original'),
      ['oauth_consumer_key', 'dpf43f3p2l4k3l03'],
      ['oauth_token', 'nnch734d00sl2jdk'],
      ['oauth_signature_method', 'HMAC-SHA1'],
      ['oauth_timestamp', '137131202'],
      ['oauth_nonce', 'chapoH'],
    ]);
    expect(sign('HMAC-SHA1', photos, 'kd94hf93k423kf44', 'pfkkdhi9sl3r4s00')).toBe('MdpQcU8iPSUjWoN/UDMsK2sui9I=');
  });

  it('when the scheme and host are upper case or carry the default port, then the base string URI is normalised', () => {
    expect(baseStringUri('HTTP', 'EXAMPLE.com:80', '/r%20v/X')).toBe('http://example.com/r%20v/X');
    expect(baseStringUri('https', 'www.example.net:8080', '')).toBe('https://www.example.net:8080/');
    expect(baseStringUri('https', 'example.com:443', '/a')).toBe('https://example.com/a');
    expect(() => baseStringUri('http', '', '/')).toThrow(OAuthFormatError);
  });

  it('percent-encodes reserved characters and UTF-8, leaving only unreserved ones', () => {
    expect(percentEncode("Ladies + Gentlemen!*'()~._-")).toBe('Ladies%20%2B%20Gentlemen%21%2A%27%28%29~._-');
    expect(percentEncode('☃')).toBe('%E2%98%83');
  });
});

describe('OAuth 1.0a Authorization header', () => {
  it('when a parameter is duplicated, unknown or missing, or the method is unsupported, then it is refused', () => {
    const ok = 'OAuth oauth_consumer_key="k", oauth_signature_method="HMAC-SHA256", oauth_timestamp="1", oauth_nonce="n", oauth_signature="s"';
    expect(parseOAuthHeader(ok).signatureMethod).toBe('HMAC-SHA256');
    expect(() => parseOAuthHeader(`${ok}, oauth_nonce="again"`)).toThrow(/twice/);
    expect(() => parseOAuthHeader(`${ok}, foo="bar"`)).toThrow(/unexpected/);
    expect(() => parseOAuthHeader(ok.replace('oauth_nonce="n", ', ''))).toThrow(/oauth_nonce is missing/);
    expect(() => parseOAuthHeader(ok.replace('HMAC-SHA256', 'PLAINTEXT'))).toThrow(/HMAC-SHA1 or HMAC-SHA256/);
    expect(() => parseOAuthHeader(ok.replace('"1"', '"soon"'))).toThrow(/timestamp/);
    expect(() => parseOAuthHeader(`${ok}, oauth_version="2.0"`)).toThrow(/version/);
    expect(() => parseOAuthHeader('OAuth oauth_consumer_key=k')).toThrow(/malformed/);
    expect(() => parseOAuthHeader('Bearer abc')).toThrow(OAuthFormatError);
  });

  it('when the realm holds a comma, then the header still parses', () => {
    const h = parseOAuthHeader('OAuth realm="Photos, Inc", oauth_consumer_key="k",oauth_signature_method="HMAC-SHA1",oauth_timestamp="1",oauth_nonce="n",oauth_signature="a%2Bb"');
    expect(h.signature).toBe('a+b');
    expect(h.params.map(([n]) => n).sort()).toEqual(['oauth_consumer_key', 'oauth_nonce', 'oauth_signature_method', 'oauth_timestamp']);
  });
});

describe('OAuth 1.0a signature check', () => {
  it('accepts the right HMAC-SHA1 and HMAC-SHA256 signatures and refuses any other', () => {
    for (const method of ['HMAC-SHA1', 'HMAC-SHA256'] as const) {
      const good = sign(method, 'GET&x&y', 'secret');
      expect(signatureMatches(method, 'GET&x&y', 'secret', good)).toBe(true);
      expect(signatureMatches(method, 'GET&x&y', 'secreT', good)).toBe(false);
      expect(signatureMatches(method, 'POST&x&y', 'secret', good)).toBe(false);
      expect(signatureMatches(method, 'GET&x&y', 'secret', good.slice(0, -2))).toBe(false);
      expect(signatureMatches(method, 'GET&x&y', 'secret', '')).toBe(false);
    }
    expect(sign('HMAC-SHA256', 'a', 'b')).not.toBe(sign('HMAC-SHA1', 'a', 'b'));
  });
});

describe('OAuth 1.0a parameters in the query string or a form body (RFC 5849 §3.5.2, §3.5.3)', () => {
  const pairs = formParams('oauth_consumer_key=k&oauth_signature_method=HMAC-SHA1&oauth_timestamp=1&oauth_nonce=n&oauth_signature=a%2Bb');

  it('reads them with the checks of the header, and leaves the signature out of the base-string parameters', () => {
    const parsed = parseOAuthParams(pairs);
    expect(parsed).toMatchObject({ consumerKey: 'k', signatureMethod: 'HMAC-SHA1', signature: 'a+b', timestamp: 1, nonce: 'n' });
    expect(parsed.params.map(([n]) => n)).not.toContain('oauth_signature');
    expect(() => parseOAuthParams([...pairs, ['oauth_nonce', 'again']])).toThrow(/twice/);
    expect(() => parseOAuthParams(pairs.filter(([n]) => n !== 'oauth_timestamp'))).toThrow(/oauth_timestamp is missing/);
  });

  it('takes the oauth_* members out of a query string or form body, keeping every other member byte for byte', () => {
    expect(withoutProtocolParams('a=1&oauth_nonce=n&b=two+words&oauth_signature=x%2By&c=%7E')).toBe('a=1&b=two+words&c=%7E');
    expect(withoutProtocolParams('oauth%5Fnonce=n&oauthx=1')).toBe('oauthx=1');
    expect(withoutProtocolParams('oauth_nonce=n')).toBe('');
    expect(withoutProtocolParams('bad=%E0%A4%A&oauth_x=1')).toBe('bad=%E0%A4%A');
  });
});
