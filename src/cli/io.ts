// What every administrator command gets: where to write, and which configuration directory.
export interface CommandIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  configDir: string;
}

export const processIo = (configDir: string): CommandIo => ({
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  configDir,
});
