// A horizontal bar chart of ratios, as a standalone SVG (no dependency): one bar per measurement, a line at
// 1x, and a tick where each bar's target lies, so that a reader sees at a glance which ones meet theirs.
const ROW_HEIGHT = 18
const LABEL_WIDTH = 340
const BAR_WIDTH = 420
const TOP = 40

export function ratioChart(rows, { title }) {
  const maxRatio = Math.max(2, ...rows.map((row) => row.ratio), ...rows.map((row) => row.target))
  const x = (ratio) => LABEL_WIDTH + (ratio / maxRatio) * BAR_WIDTH
  const height = TOP + rows.length * ROW_HEIGHT + 30
  const width = LABEL_WIDTH + BAR_WIDTH + 70
  const bars = rows.map(({ label, ratio, target }, index) => {
    const y = TOP + index * ROW_HEIGHT
    const color = ratio >= target ? '#2e7d32' : '#c62828'
    return [
      `<text x="${LABEL_WIDTH - 6}" y="${y + 12}" text-anchor="end">${escape(label)}</text>`,
      `<rect x="${LABEL_WIDTH}" y="${y + 3}" width="${(x(ratio) - LABEL_WIDTH).toFixed(1)}" height="${ROW_HEIGHT - 6}" fill="${color}"/>`,
      `<line x1="${x(target).toFixed(1)}" x2="${x(target).toFixed(1)}" y1="${y + 1}" y2="${y + ROW_HEIGHT - 1}" stroke="#000" stroke-width="2"/>`,
      `<text x="${(x(ratio) + 4).toFixed(1)}" y="${y + 12}">${ratio.toFixed(2)}x</text>`,
    ].join('')
  })
  const one = x(1).toFixed(1)
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="20" font-size="13" font-weight="bold">${escape(title)}</text>`,
    `<line x1="${one}" x2="${one}" y1="${TOP - 4}" y2="${height - 26}" stroke="#888" stroke-dasharray="3,3"/>`,
    `<text x="${one}" y="${height - 12}" text-anchor="middle">1x</text>`,
    ...bars,
    '</svg>',
    '',
  ].join('\n')
}

function escape(text) {
  return String(text).replace(/[<>&"]/g, (char) => `&#${char.charCodeAt(0)};`)
}
