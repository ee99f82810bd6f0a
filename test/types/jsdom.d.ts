// The little of jsdom's API the web UI test uses. The project compiles without the
// DOM library (Node code only), and @types/jsdom would pull it in for every file.
declare module 'jsdom' {
  export interface DomElement {
    textContent: string | null;
    hidden: boolean;
    value: string;
    getAttribute(name: string): string | null;
    dispatchEvent(event: unknown): boolean;
  }
  export interface DomFormData {
    entries(): IterableIterator<[string, string | DomFile]>;
  }
  export interface DomFile {
    readonly name: string;
  }
  export interface DomFileReader {
    onload: (() => void) | null;
    onerror: (() => void) | null;
    readonly result: unknown;
    readonly error: unknown;
    readAsArrayBuffer(blob: DomFile): void;
  }
  export interface DomWindow {
    readonly document: {
      querySelector(selector: string): DomElement | null;
      querySelectorAll(selector: string): { readonly length: number };
    };
    readonly location: { readonly href: string; hash: string };
    readonly localStorage: { getItem(key: string): string | null };
    Event: new (type: string, init?: { cancelable?: boolean }) => unknown;
    File: new (parts: string[], name: string, options?: { type?: string }) => DomFile;
    FormData: new () => DomFormData;
    FileReader: new () => DomFileReader;
    close(): void;
  }
  export class VirtualConsole {
    on(event: 'jsdomError' | 'error', listener: (e: { message?: string }) => void): this;
  }
  export class JSDOM {
    static fromURL(
      url: string,
      options?: { runScripts?: 'dangerously' | 'outside-only'; resources?: 'usable'; pretendToBeVisual?: boolean; virtualConsole?: VirtualConsole; beforeParse?: (window: DomWindow) => void },
    ): Promise<JSDOM>;
    readonly window: DomWindow;
  }
}
