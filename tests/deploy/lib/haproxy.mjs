// Reads an HAProxy configuration into sections, enough to compare two
// configurations and to list their servers.

const sectionKeywords = new Set(['global', 'defaults', 'frontend', 'backend', 'listen', 'resolvers', 'peers', 'userlist']);

// Returns a Map from section name ("defaults", "backend gateways") to its
// directives, each a string with whitespace collapsed. Full-line comments
// and blank lines are dropped.
export function parseHaproxyConfig(text) {
  const sections = new Map();
  let current = null;
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim().replace(/\s+/g, ' ');
    if (line === '' || line.startsWith('#')) {
      continue;
    }
    const keyword = line.split(' ')[0];
    if (!/^\s/.test(rawLine) && sectionKeywords.has(keyword)) {
      current = [];
      sections.set(line, current);
      continue;
    }
    if (current === null) {
      throw new Error(`directive outside any section: ${line}`);
    }
    current.push(line);
  }
  return sections;
}

// Servers of one backend as { name, host, port }.
export function backendServers(sections, backend) {
  return (sections.get(`backend ${backend}`) ?? [])
    .filter((line) => line.startsWith('server '))
    .map((line) => {
      const [, name, address] = line.split(' ');
      const separator = address.lastIndexOf(':');
      return { name, host: address.slice(0, separator), port: Number(address.slice(separator + 1)) };
    });
}
